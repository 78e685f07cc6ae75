package storage

import (
	"fmt"
	"net/netip"
	"syscall"
)

// addrError is the refusal of one connection by the address policy.
type addrError struct {
	addr   string
	reason string
	hint   bool
}

func (e *addrError) Error() string {
	s := "storage: refused to connect to " + e.addr + ": " + e.reason + " not allowed"
	if e.hint {
		s += " (set allow_private_networks to permit)"
	}
	return s
}

func (e *addrError) Unwrap() error { return ErrForbiddenAddress }

func mustPrefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

// Cloud metadata services: refused even when private networks are allowed, since they hand out
// the machine's credentials.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack, ...
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

var (
	cgnat = netip.MustParsePrefix("100.64.0.0/10")
	// Special-purpose IPv4 ranges that are not global (RFC 6890 and its registry).
	reserved4 = mustPrefixes(
		"0.0.0.0/8",       // "this network"
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"240.0.0.0/4",     // reserved, and broadcast
	)
	// IPv6 is allowed only in global unicast 2000::/3, minus these.
	global6   = netip.MustParsePrefix("2000::/3")
	reserved6 = mustPrefixes(
		"2001::/23",     // IETF protocol assignments (Teredo, ORCHID, ...)
		"2001:db8::/32", // documentation
		"3fff::/20",     // documentation
	)
	// IPv6 forms that embed an IPv4 address, which is checked in turn.
	nat64  = mustPrefixes("64:ff9b::/96", "64:ff9b:1::/48")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

// addrPolicy returns why ip may not be connected to, or "" when it may. With allowPrivate,
// only the cloud metadata addresses are refused.
func addrPolicy(ip netip.Addr, allowPrivate bool) (reason string, private bool) {
	ip = ip.Unmap()
	for _, m := range metadataAddrs {
		if ip == m {
			return "cloud metadata address", false
		}
	}
	if allowPrivate {
		return "", false
	}
	switch {
	case !ip.IsValid():
		return "invalid address", false
	case ip.IsUnspecified():
		return "unspecified address", true
	case ip.IsLoopback():
		return "loopback address", true
	case ip.IsPrivate():
		return "private address", true
	case ip.IsLinkLocalUnicast():
		return "link-local address", true
	case ip.IsMulticast():
		return "multicast address", true
	}
	if ip.Is4() {
		if cgnat.Contains(ip) {
			return "shared (CGNAT) address", true
		}
		for _, p := range reserved4 {
			if p.Contains(ip) {
				return "reserved address", true
			}
		}
		return "", false
	}
	// IPv6 that carries an IPv4 address: judge the IPv4 address.
	for _, p := range nat64 {
		if p.Contains(ip) {
			b := ip.As16()
			return addrPolicy(netip.AddrFrom4([4]byte(b[12:16])), allowPrivate)
		}
	}
	if sixTo4.Contains(ip) {
		b := ip.As16()
		return addrPolicy(netip.AddrFrom4([4]byte(b[2:6])), allowPrivate)
	}
	if !global6.Contains(ip) {
		return "non-global address", true
	}
	for _, p := range reserved6 {
		if p.Contains(ip) {
			return "reserved address", true
		}
	}
	return "", false
}

// netPolicy decides which addresses the HTTP client may connect to. It is checked in the
// dialer's Control function, on the address actually being connected to, so redirects and DNS
// answers (including rebinding) cannot lead around it.
type netPolicy struct {
	allowPrivate bool
	// testAllow, set only by tests, permits an address the policy would refuse.
	testAllow func(netip.Addr) bool
}

func (p *netPolicy) check(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &addrError{addr: address, reason: "unparsable address"}
	}
	if p.testAllow != nil && p.testAllow(ap.Addr().Unmap()) {
		return nil
	}
	if reason, private := addrPolicy(ap.Addr(), p.allowPrivate); reason != "" {
		return &addrError{addr: address, reason: reason, hint: private}
	}
	return nil
}

// control is the net.Dialer Control hook: it runs after the address is resolved and before
// connect(2).
func (p *netPolicy) control(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return &addrError{addr: address, reason: fmt.Sprintf("network %q", network)}
	}
	return p.check(address)
}

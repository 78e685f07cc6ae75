package storage

import "net/netip"

// AllowAddrForTest lets a test permit addresses the policy would refuse (the test servers are
// on loopback), to test what happens beyond the first hop.
func AllowAddrForTest(s *Store, ok func(netip.Addr) bool) { s.policy.testAllow = ok }

// AddrPolicyForTest exposes the address policy: the reason an address is refused, or "".
func AddrPolicyForTest(ip netip.Addr, allowPrivate bool) string {
	reason, _ := addrPolicy(ip, allowPrivate)
	return reason
}

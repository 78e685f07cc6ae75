// Package configs holds the example worker configuration and the built-in presets, embedded in
// the binary so a worker needs no files to start.
package configs

import _ "embed"

// Presets is configs/presets.yaml: the built-in presets.
//
//go:embed presets.yaml
var Presets []byte

// WorkerExample is configs/worker.example.yaml: every worker setting with its default.
//
//go:embed worker.example.yaml
var WorkerExample []byte

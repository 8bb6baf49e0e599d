//go:build !unix

package main

import "time"

// selfCPU has no getrusage to read here: the bench prints no generator CPU.
func selfCPU() (time.Duration, bool) { return 0, false }

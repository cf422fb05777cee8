package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"
)

// profiles are the profiles of the load test's own process taken over the measured run (not
// the warm-up): with the service in-process, they show the service and the load generator
// together; against -url, the load generator alone (profile the service with PPROF=true).
type profiles struct {
	cpu, trace, mutex, block, heap string // file names, "" for none
}

// any reports whether a profile is asked for.
func (p profiles) any() bool {
	return p.cpu != "" || p.trace != "" || p.mutex != "" || p.block != "" || p.heap != ""
}

// start starts the CPU profile and the execution trace, and turns on the mutex and block
// profiles; stop writes them all.
func (p profiles) start() (stop func() error, err error) {
	var files []*os.File
	closeAll := func() error {
		var errs []error
		for _, f := range files {
			errs = append(errs, f.Close())
		}
		return errors.Join(errs...)
	}
	create := func(name string) (*os.File, error) {
		f, err := os.Create(name)
		if err == nil {
			files = append(files, f)
		}
		return f, err
	}
	if p.cpu != "" {
		f, err := create(p.cpu)
		if err != nil {
			return nil, fmt.Errorf("-cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, errors.Join(fmt.Errorf("-cpuprofile: %w", err), closeAll())
		}
	}
	if p.trace != "" {
		f, err := create(p.trace)
		if err != nil {
			pprof.StopCPUProfile()
			return nil, errors.Join(fmt.Errorf("-trace: %w", err), closeAll())
		}
		if err := trace.Start(f); err != nil {
			pprof.StopCPUProfile()
			return nil, errors.Join(fmt.Errorf("-trace: %w", err), closeAll())
		}
	}
	if p.mutex != "" {
		runtime.SetMutexProfileFraction(5)
	}
	if p.block != "" {
		runtime.SetBlockProfileRate(int(10 * time.Microsecond)) // blocking events of 10 µs and more
	}
	return func() error {
		pprof.StopCPUProfile()
		trace.Stop()
		errs := []error{
			writeProfile("mutex", p.mutex),
			writeProfile("block", p.block),
			writeProfile("allocs", p.heap),
		}
		runtime.SetMutexProfileFraction(0)
		runtime.SetBlockProfileRate(0)
		return errors.Join(append(errs, closeAll())...)
	}, nil
}

// writeProfile writes the named runtime profile to file, if one is named.
func writeProfile(name, file string) error {
	if file == "" {
		return nil
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("%s profile: %w", name, err)
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("%s profile: %w", name, err)
	}
	return f.Close()
}

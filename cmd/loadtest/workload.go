package main

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/mdegraph/mdegraph/internal/simulator"
)

// workload is a run's fixed plan, the same for every run with the same flags: the ids ranked
// by popularity, and the id each query asks for. Clients take queries in plan order, so only
// the interleaving varies between runs, never what is asked.
type workload struct {
	targets []expected // by Zipf rank: targets[0] is the most asked
	plan    []int      // plan[i] is the index in targets of query i
	known   int        // how many targets the data set knows
	bodies  [][]byte   // bodies[j] is the POST body asking for targets[j]
}

// newWorkload picks the ids from ref's data set and draws the plan. Known ids are the first
// devices in ref's list order; unknown ids are 40-hex ids derived from the seed that ref does
// not know. Their popularity order is a seeded shuffle, so unknown ids are not all rare.
func newWorkload(ref *simulator.Simulator, o options) (workload, error) {
	nUnknown := int(math.Round(float64(o.ids) * o.unknown))
	nKnown := o.ids - nUnknown
	machines := ref.Machines()
	if nKnown > len(machines) {
		return workload{}, fmt.Errorf("-m %d with -unknown %v needs %d known devices; the data set has %d (raise -devices, in-process only)",
			o.ids, o.unknown, nKnown, len(machines))
	}
	w := workload{known: nKnown, targets: make([]expected, 0, o.ids)}
	for _, m := range machines[:nKnown] {
		w.targets = append(w.targets, expectationFor(ref, m.ID, o.details, o.shape))
	}
	for i := 0; len(w.targets) < o.ids; i++ {
		id := unknownID(o.seed, i)
		if _, ok := ref.Machine(id); ok {
			continue // astronomically unlikely, but then it is not unknown
		}
		w.targets = append(w.targets, expected{id: id, details: o.details, shape: o.shape})
	}
	rng := rand.New(rand.NewPCG(o.seed, o.seed^0x6c6f6164_74657374))
	rng.Shuffle(len(w.targets), func(i, j int) { w.targets[i], w.targets[j] = w.targets[j], w.targets[i] })
	zipf := rand.NewZipf(rng, o.zipf, 1, uint64(o.ids-1))
	if zipf == nil {
		return workload{}, fmt.Errorf("-zipf %v: not a valid Zipf skew (want s > 1)", o.zipf)
	}
	w.plan = make([]int, o.queries)
	for i := range w.plan {
		w.plan[i] = int(zipf.Uint64())
	}
	q := o.shape.query(o.details)
	w.bodies = make([][]byte, len(w.targets))
	for j, t := range w.targets {
		b, err := json.Marshal(map[string]any{"query": q, "variables": map[string]string{"id": t.id}})
		if err != nil {
			return workload{}, err
		}
		w.bodies[j] = b
	}
	return w, nil
}

// unknownID is a valid device id (40 lower-case hex digits) that no data set is meant to hold.
func unknownID(seed uint64, i int) string {
	sum := sha1.Sum(fmt.Appendf(nil, "mdegraph loadtest: unknown device %d/%d", seed, i))
	return hex.EncodeToString(sum[:])
}

// distinctAsked counts the ids the plan asks for at least once.
func (w workload) distinctAsked() int {
	seen := make(map[int]bool, len(w.targets))
	for _, j := range w.plan {
		seen[j] = true
	}
	return len(seen)
}

package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// series is a scrape of Prometheus' text format: sample values by series, keyed
// name{label="value",...} with the labels sorted. Enough of the format for counters.
type series map[string]sample

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseSeries reads the text exposition format with Prometheus' own parser, keeping the
// counters, gauges and untyped samples, and of a histogram its NAME_count and its cumulative
// NAME_bucket{le="..."} samples.
func parseSeries(r io.Reader) (series, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := series{}
	for name, family := range families {
		for _, m := range family.GetMetric() {
			s := sample{name: name, labels: map[string]string{}}
			switch {
			case m.GetHistogram() != nil:
				s.name = name + "_count"
				s.value = float64(m.GetHistogram().GetSampleCount())
			case m.GetCounter() != nil:
				s.value = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				s.value = m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				s.value = m.GetUntyped().GetValue()
			default:
				continue
			}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			out[s.key()] = s
			for _, b := range m.GetHistogram().GetBucket() {
				bs := sample{name: name + "_bucket", labels: maps.Clone(s.labels), value: float64(b.GetCumulativeCount())}
				bs.labels["le"] = strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)
				out[bs.key()] = bs
			}
		}
	}
	return out, nil
}

func (s sample) key() string {
	names := make([]string, 0, len(s.labels))
	for k := range s.labels {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(s.name)
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, s.labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

// since returns s minus an earlier scrape: what the run itself added to each counter.
func (s series) since(before series) series {
	out := make(series, len(s))
	for k, v := range s {
		v.value -= before[k].value
		out[k] = v
	}
	return out
}

// plus adds the samples of other to s's, series by series (several replicas' scrapes).
func (s series) plus(other series) series {
	out := make(series, len(s)+len(other))
	for k, v := range s {
		out[k] = v
	}
	for k, v := range other {
		if w, ok := out[k]; ok {
			v.value += w.value
		}
		out[k] = v
	}
	return out
}

// sum adds the samples of metric name grouped by the values of labels (joined with "/").
func (s series) sum(name string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	for _, v := range s {
		if v.name != name {
			continue
		}
		parts := make([]string, len(labels))
		for i, l := range labels {
			parts[i] = v.labels[l]
		}
		out[strings.Join(parts, "/")] += v.value
	}
	return out
}

// scrapeAll scrapes every replica's metrics page and adds them up.
func scrapeAll(ctx context.Context, client *http.Client, urls []string) (series, error) {
	out := series{}
	for _, u := range urls {
		s, err := scrape(ctx, client, u)
		if err != nil {
			return nil, err
		}
		out = out.plus(s)
	}
	return out, nil
}

// scrape fetches and parses a metrics page.
func scrape(ctx context.Context, client *http.Client, url string) (series, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseSeries(io.LimitReader(resp.Body, 16<<20))
}

// quantileBound is the upper bound of the bucket of histogram name (summed over its other
// labels) that holds quantile q of its observations: "at most" that; +Inf when beyond the
// last bound, and ok false without observations.
func (s series) quantileBound(name string, q float64) (bound float64, ok bool) {
	cum := s.sum(name+"_bucket", "le")
	bounds := make([]float64, 0, len(cum))
	for le := range cum {
		b, err := strconv.ParseFloat(le, 64)
		if err == nil {
			bounds = append(bounds, b)
		}
	}
	sort.Float64s(bounds)
	total := s.sum(name + "_count")[""]
	if total <= 0 {
		return 0, false
	}
	for _, b := range bounds {
		if cum[strconv.FormatFloat(b, 'g', -1, 64)] >= q*total {
			return b, true
		}
	}
	return math.Inf(1), true
}

package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
)

// Tracing exporters.
const (
	// TracingOTLP sends spans over OTLP/gRPC to a collector.
	TracingOTLP = "otlp"
	// TracingStdout writes spans as JSON on stdout: for a look without a
	// collector, not for production.
	TracingStdout = "stdout"
)

// DefaultTracingServiceName is the service.name spans carry unless
// tracing.service_name says otherwise.
const DefaultTracingServiceName = "fkrollout-worker"

// TracingConfig turns on OpenTelemetry tracing of the worker's workflows,
// Updates and activities (off unless enabled):
//
//	tracing:
//	  enabled: true
//	  exporter: otlp              # or stdout
//	  endpoint: otel-collector:4317
//	  insecure: true              # plaintext gRPC, inside the cluster
//	  service_name: fkrollout-worker
//	  sample_ratio: 0.25          # of new traces; a sampled parent is always followed
//
// With exporter otlp and no endpoint, OTEL_EXPORTER_OTLP_ENDPOINT is used.
type TracingConfig struct {
	Enabled bool `yaml:"enabled"`
	// Exporter is otlp (the default) or stdout.
	Exporter string `yaml:"exporter"`
	// Endpoint of the OTLP/gRPC collector: host:port, or an http(s) URL
	// as OTEL_EXPORTER_OTLP_ENDPOINT holds it.
	Endpoint string `yaml:"endpoint"`
	// Insecure sends OTLP without TLS.
	Insecure bool `yaml:"insecure"`
	// ServiceName is the spans' service.name (default fkrollout-worker).
	ServiceName string `yaml:"service_name"`
	// SampleRatio is the share of traces started here that are kept, 0 to
	// 1 (default 1). A pointer, so that an explicit 0 is not the default.
	SampleRatio *float64 `yaml:"sample_ratio"`
}

// Ratio is the sample ratio, 1 when unset.
func (t TracingConfig) Ratio() float64 {
	if t.SampleRatio == nil {
		return 1
	}
	return *t.SampleRatio
}

func (t *TracingConfig) applyEnv(get func(string) string) {
	// The variable every OpenTelemetry SDK reads, so a deployment that
	// already sets it for its other services needs no endpoint here.
	if t.Endpoint == "" {
		t.Endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
}

func (t *TracingConfig) defaults() {
	if t.Exporter == "" {
		t.Exporter = TracingOTLP
	}
	if t.ServiceName == "" {
		t.ServiceName = DefaultTracingServiceName
	}
}

// validate checks the section even when tracing is off, so a typo is
// found when the file is written, not on the day tracing is turned on. An
// endpoint is needed only once it is on.
func (t TracingConfig) validate() []error {
	var errs []error
	switch t.Exporter {
	case "", TracingOTLP, TracingStdout:
	default:
		errs = append(errs, fmt.Errorf("tracing.exporter: %q is not an exporter (want %s or %s)", t.Exporter, TracingOTLP, TracingStdout))
	}
	if t.ServiceName != "" && strings.TrimSpace(t.ServiceName) == "" {
		errs = append(errs, fmt.Errorf("tracing.service_name: blank"))
	}
	if r := t.Ratio(); math.IsNaN(r) || r < 0 || r > 1 {
		errs = append(errs, fmt.Errorf("tracing.sample_ratio: %v is not between 0 and 1", r))
	}
	if t.Exporter == TracingOTLP || t.Exporter == "" {
		switch {
		case t.Endpoint != "":
			errs = appendErr(errs, otlpEndpoint("tracing.endpoint", t.Endpoint))
		case t.Enabled:
			errs = append(errs, fmt.Errorf("tracing.endpoint: needed for exporter %s (host:port, or set OTEL_EXPORTER_OTLP_ENDPOINT)", TracingOTLP))
		}
	}
	return errs
}

// otlpEndpoint accepts host:port or an absolute http(s) URL.
func otlpEndpoint(path, s string) error {
	if strings.Contains(s, "://") {
		return httpURL(path, s)
	}
	if _, port, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("%s: %w (want host:port or an http(s) URL)", path, err)
	} else if port == "" {
		return fmt.Errorf("%s: %q has no port", path, s)
	}
	return nil
}

// summary is the section for the startup log: off, or the exporter and
// where it sends (an URL's credentials, if any, left out).
func (t TracingConfig) summary() string {
	if !t.Enabled {
		return "off"
	}
	if t.Exporter != TracingOTLP {
		return t.Exporter
	}
	ep := t.Endpoint
	if u, err := url.Parse(ep); err == nil && u.User != nil {
		u.User = nil
		ep = u.String()
	}
	return t.Exporter + " " + ep
}

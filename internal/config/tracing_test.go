package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tracing is off unless enabled; once on, the defaults are an OTLP
// exporter, the worker's service name and every trace kept, and the
// standard OTEL_EXPORTER_OTLP_ENDPOINT stands in for a missing endpoint.
func TestTracingSection(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		want       TracingConfig
		ratio      float64
	}{
		{"absent", "", nil, TracingConfig{Exporter: TracingOTLP, ServiceName: DefaultTracingServiceName}, 1},
		{"otlp", "tracing: {enabled: true, endpoint: \"otel-collector:4317\", insecure: true}\n", nil,
			TracingConfig{Enabled: true, Exporter: TracingOTLP, Endpoint: "otel-collector:4317", Insecure: true, ServiceName: DefaultTracingServiceName}, 1},
		{"endpoint from OTEL_EXPORTER_OTLP_ENDPOINT", "tracing: {enabled: true}\n", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"},
			TracingConfig{Enabled: true, Exporter: TracingOTLP, Endpoint: "http://collector:4317", ServiceName: DefaultTracingServiceName}, 1},
		{"the file's endpoint wins", "tracing: {enabled: true, endpoint: \"a:4317\"}\n", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4317"},
			TracingConfig{Enabled: true, Exporter: TracingOTLP, Endpoint: "a:4317", ServiceName: DefaultTracingServiceName}, 1},
		{"stdout needs no endpoint", "tracing: {enabled: true, exporter: stdout, service_name: fk-staging, sample_ratio: 0}\n", nil,
			TracingConfig{Enabled: true, Exporter: TracingStdout, ServiceName: "fk-staging"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadYAML(t, tc.yaml, tc.env)
			require.NoError(t, err)
			assert.Equal(t, tc.ratio, cfg.Tracing.Ratio())
			got := cfg.Tracing
			got.SampleRatio = nil
			assert.Equal(t, tc.want, got)
		})
	}
}

// Every bad tracing field is refused at load, named by its path, even with
// tracing off: the typo is found when the file is written.
func TestTracingValidation(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown exporter", "tracing: {exporter: zipkin}\n", `tracing.exporter: "zipkin" is not an exporter (want otlp or stdout)`},
		{"ratio above one", "tracing: {sample_ratio: 1.5}\n", `tracing.sample_ratio: 1.5 is not between 0 and 1`},
		{"negative ratio", "tracing: {enabled: true, exporter: stdout, sample_ratio: -0.1}\n", `tracing.sample_ratio: -0.1 is not between 0 and 1`},
		{"ratio not a number", "tracing: {sample_ratio: .nan}\n", `tracing.sample_ratio: NaN is not between 0 and 1`},
		{"no endpoint when on", "tracing: {enabled: true}\n", `tracing.endpoint: needed for exporter otlp`},
		{"endpoint without port", "tracing: {endpoint: otel-collector}\n", `tracing.endpoint: address otel-collector: missing port in address`},
		{"endpoint url scheme", "tracing: {endpoint: \"grpc://collector:4317\"}\n", `tracing.endpoint: "grpc://collector:4317" is not an absolute http(s) URL`},
		{"blank service name", "tracing: {service_name: \" \"}\n", `tracing.service_name: blank`},
		{"misspelled key", "tracing: {sample_rate: 0.5}\n", `field sample_rate not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadYAML(t, tc.yaml, nil)
			require.Error(t, err)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

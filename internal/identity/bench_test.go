package identity

import (
	"testing"
	"time"
)

// BenchmarkVerify is what one signed decision costs the workflow's
// validator (and a replay of the history: nothing, validators do not rerun).
func BenchmarkVerify(b *testing.B) {
	pub, priv, err := GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	c := Claim{Action: "decide", WorkflowID: "r-1", RunID: "run-1", GateID: "production/promotion/2", Choice: "approve", Actor: "alice@example.com", Reason: "staging clean"}
	p := Sign(priv, "alice@example.com", c, NewNonce(), now)
	keys := []string{FormatPublicKey(pub)}
	b.ResetTimer()
	for b.Loop() {
		if err := Verify(c, &p, keys, now, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// Package uitest drives the Temporal Web UI in a real browser (Debian's
// chromium through chromedp) the way a release owner does: start a rollout
// from the Start Workflow form, read the gate block in Current Details,
// decide it with the decide Update, and read the page after completion.
// Only tests live here; doc.go keeps the package buildable.
package uitest

// Package archtest holds tests of the module's shape: which packages may
// link what. It has no code of its own.
package archtest

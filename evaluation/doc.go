// Package evaluation serves flag evaluations in plain Go: it finds the flag
// set a caller evaluates against (the project and environment of its key),
// keeps every set compiled in process, and applies testing-session
// overrides. The native /v1/evaluate API and OFREP are thin layers over it.
//
// Compiled sets are cached per environment and replaced when the change
// feed announces a write (on every instance sharing the store, within
// milliseconds), with a TTL as the safety net; so evaluation itself needs no
// storage access. Testing sessions are the exception, on purpose: a CI job
// sets overrides and evaluates at once, possibly on another instance, so a
// session is read from storage on each evaluation that names it.
package evaluation

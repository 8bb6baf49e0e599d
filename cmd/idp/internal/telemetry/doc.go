// Package telemetry is what an operator sees of a running IdP besides its
// pages: the request ID that ties a request's log lines together, the
// log handler that writes it into every line, and the Prometheus registry
// and HTTP middleware behind /metrics. The counters of login and token
// events live in the packages that own the events (login, op); this
// package only collects them.
package telemetry

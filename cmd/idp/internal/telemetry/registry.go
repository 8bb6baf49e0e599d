package telemetry

import (
	"database/sql"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go runtime's and the process's
// collectors (heap, goroutines, RSS, open files), one per Server: a fresh
// registry per assembly lets tests run several servers in one process.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// RegisterDBStats adds the database/sql pool statistics (go_sql_* with
// db_name="idp": open, in use, idle, waits and wait time, closes).
func RegisterDBStats(reg prometheus.Registerer, db *sql.DB) error {
	return reg.Register(collectors.NewDBStatsCollector(db, "idp"))
}

// Handler serves reg in the Prometheus exposition format. A collector
// that fails is logged and the others are still served.
func Handler(reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

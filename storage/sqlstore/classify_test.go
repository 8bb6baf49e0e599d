package sqlstore

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/lib/pq"

	"github.com/comstockloan/idp/storage"
)

// A database that cannot serve now is ErrUnavailable (callers answer 503),
// never ErrNotFound or nothing, which the OP and the pages would turn into
// a 4xx blaming the client.
func TestClassifyUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"server shutting down", &pq.Error{Code: "57P01"}, storage.ErrUnavailable},
		{"server starting", &pq.Error{Code: "57P03"}, storage.ErrUnavailable},
		{"connection failure", &pq.Error{Code: "08006"}, storage.ErrUnavailable},
		{"too many connections", &pq.Error{Code: "53300"}, storage.ErrUnavailable},
		{"refused dial", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, storage.ErrUnavailable},
		{"bad connection", fmt.Errorf("query: %w", driver.ErrBadConn), storage.ErrUnavailable},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), storage.ErrUnavailable},
		{"unique violation", &pq.Error{Code: "23505"}, storage.ErrAlreadyExists},
		{"foreign key", &pq.Error{Code: "23503"}, storage.ErrNotFound},
		{"syntax error is ours", &pq.Error{Code: "42601"}, nil},
		{"invalid text is the input's", &pq.Error{Code: "22021"}, nil},
		{"anything else", errors.New("boom"), nil},
	} {
		got := classify(tc.err)
		if got != tc.want {
			t.Errorf("%s: classify = %v, want %v", tc.name, got, tc.want)
		}
		if tc.want != nil && !errors.Is(wrap("op", tc.err), tc.want) {
			t.Errorf("%s: wrap does not carry %v", tc.name, tc.want)
		}
	}
}

// Command ferretdb is a minimal launcher for the embeddable FerretDB v1
// package (github.com/FerretDB/FerretDB/ferretdb) with the SQLite backend.
//
// It exists because `go install .../cmd/ferretdb@v1.24.2` panics at start-up
// (missing build/version/version.txt, FerretDB issue #2982); when FerretDB is
// used as a library from another main module, that check is skipped.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on (host:port)")
	sqliteDir := flag.String("sqlite-dir", ".local/data/ferretdb", "directory holding the SQLite database files (one file per MongoDB database)")
	logLevel := flag.String("log-level", "info", "log level: debug, info, warn, error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "invalid -log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dir, err := filepath.Abs(*sqliteDir)
	if err != nil {
		logger.Error("cannot resolve sqlite dir", "error", err)
		os.Exit(1)
	}
	if err = os.MkdirAll(dir, 0o750); err != nil {
		logger.Error("cannot create sqlite dir", "error", err)
		os.Exit(1)
	}
	// FerretDB expects a "file:" URI pointing at a directory, with a trailing slash.
	sqliteURL := "file:" + strings.TrimSuffix(dir, "/") + "/"

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listenAddr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger.Info("starting FerretDB", "listen", *listenAddr, "sqlite", sqliteURL, "pid", os.Getpid())

	if err = f.Run(ctx); err != nil {
		logger.Error("FerretDB stopped with error", "error", err)
		os.Exit(1)
	}

	logger.Info("FerretDB stopped")
}

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/urfave/cli/v2"
)

// Plotting lives in its own program, spann-plot: the plotting library
// parses a dozen embedded fonts as it loads, which would add about 3 MiB to
// every search's resident set. spann-search runs it for `plot` and --plot.

// plotProgram finds spann-plot: $SPANN_PLOT, else next to this executable,
// else on the PATH.
func plotProgram() (string, error) {
	if p := os.Getenv("SPANN_PLOT"); p != "" {
		return p, nil
	}
	var next string
	if exe, err := os.Executable(); err == nil {
		next = filepath.Join(filepath.Dir(exe), "spann-plot")
		if st, err := os.Stat(next); err == nil && !st.IsDir() {
			return next, nil
		}
	}
	if p, err := exec.LookPath("spann-plot"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("spann-plot not found next to spann-search (%s) or on the PATH (build it with go build -o bin/ ./cmd/...)", next)
}

// runPlotProgram runs spann-plot with args, its output passed through.
func runPlotProgram(args ...string) error {
	prog, err := plotProgram()
	if err != nil {
		return err
	}
	cmd := exec.Command(prog, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("%s failed (%v; its message is above)", prog, exit)
		}
		return fmt.Errorf("running %s: %w", prog, err)
	}
	return nil
}

func plotCommand() *cli.Command {
	return &cli.Command{
		Name:            "plot",
		Usage:           "draw sweep CSV files as labelled recall/QPS curves on one figure (runs spann-plot; see spann-plot --help)",
		ArgsUsage:       "--out F.png [--title T] [--k 10] [NAME=]SWEEP.csv ...",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			return runPlotProgram(c.Args().Slice()...)
		},
	}
}

// plotSweep draws one sweep, already written as CSV, into png.
func plotSweep(png, csvPath, name, title string, k int) error {
	return runPlotProgram("--out", png, "--title", title, "--k", strconv.Itoa(k), name+"="+csvPath)
}

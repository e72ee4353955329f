package build

import (
	"os"
	"syscall"
)

// crashAt names the point at which a build kills itself with SIGKILL
// (environment variable SPANN_TEST_CRASH_AT; empty in normal use). The
// crash tests set it to kill a real build process at exactly the point
// they mean to test instead of after a guessed delay:
//
//	after select heads, after head graph, after assign and write postings
//	                    the end of each phase, its file written
//	assign: half        half of the base assigned, spill files half full
//	postings: half      half of the spill buckets written as postings
//	manifest written    every file complete, the temporary directory not
//	                    yet renamed to --out
//	exchanged           --force: new index at --out, the old one not yet
//	                    removed from the temporary directory's name
var crashAt = os.Getenv("SPANN_TEST_CRASH_AT")

// crashPoint kills the process if the test asked for a crash at name.
func crashPoint(name string) {
	if crashAt != "" && crashAt == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

package build

import (
	"os"
	"strconv"

	"github.com/gospann/spann/internal/crash"
)

// The points at which a build kills itself with SIGKILL when a test sets
// SPANN_TEST_CRASH_AT (internal/crash; "NAME#K" kills at the K-th pass):
//
//	after select heads, after head graph, after assign and write postings
//	                    the end of each phase, its file written
//	checkpoint: saving  a checkpoint written to its temporary name, not
//	                    yet renamed over the last one
//	checkpoint: saved   a checkpoint committed
//	assign: block       a block of base rows spilled (before its checkpoint)
//	spill: synced       the spill's buckets written and synced up to a
//	                    checkpoint not yet committed
//	assign: half        half of the base assigned, spill files half full
//	postings: bucket    a spill bucket written as postings (before its
//	                    checkpoint)
//	postings: synced    postings.bin synced up to a checkpoint not yet
//	                    committed
//	postings: half      half of the spill buckets written as postings
//	manifest written    every file complete, the build directory not yet
//	                    renamed to --out
//	committed           the index renamed to --out, its scratch directory
//	                    not yet removed
//	exchanged           --force: new index at --out, the old one not yet
//	                    removed from the build directory's name

// testBucketBytes (SPANN_TEST_BUCKET_BYTES, bytes) caps the spill bucket
// size like Options.maxBucketBytes, so that the crash tests' small builds,
// run as child processes, have several buckets to be killed between.
var testBucketBytes, _ = strconv.ParseInt(os.Getenv("SPANN_TEST_BUCKET_BYTES"), 10, 64)

// crashPoint kills the process if the test asked for a crash at name.
func crashPoint(name string) { crash.Point(name) }

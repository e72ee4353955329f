// Package progress reports the progress of long phases to a writer
// (stderr, for the commands): a progress bar with ETA when the writer is a
// terminal (schollz/progressbar), plain periodic lines otherwise (logs,
// CI), nothing when the writer is nil.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Reporter tracks one phase of work. Its methods are safe for concurrent use.
type Reporter struct {
	mu      sync.Mutex
	name    string
	total   int64
	done    int64
	start   time.Time
	last    time.Time
	bar     *progressbar.ProgressBar
	w       io.Writer
	every   time.Duration
	stopped bool
}

// New starts a phase called name with total units of work, reported to w
// (nil: not reported, but still timed).
func New(w io.Writer, name string, total int64) *Reporter {
	r := &Reporter{name: name, total: total, start: time.Now(), w: w, every: 5 * time.Second}
	r.last = r.start
	if w == nil {
		return r
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		r.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(name),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionFullWidth(),
		)
	}
	return r
}

// Set records that done units (of the total) are finished.
func (r *Reporter) Set(done int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.done = done
	if r.w == nil {
		return
	}
	if r.bar != nil {
		r.bar.Set64(done)
		return
	}
	now := time.Now()
	if now.Sub(r.last) >= r.every {
		r.last = now
		el := now.Sub(r.start)
		eta := "?"
		if done > 0 {
			eta = (time.Duration(float64(el) * float64(r.total-done) / float64(done))).Round(time.Second).String()
		}
		fmt.Fprintf(r.w, "%s: %d/%d (%.1f%%), %s elapsed, ETA %s\n", r.name, done, r.total,
			100*float64(done)/float64(max(r.total, 1)), el.Round(time.Second), eta)
	}
}

// SetTotal changes the total units of work (for phases whose size is only
// known once they start).
func (r *Reporter) SetTotal(total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.total == total {
		return
	}
	r.total = total
	if r.bar != nil {
		r.bar.ChangeMax64(total)
	}
}

// Add records n more finished units.
func (r *Reporter) Add(n int64) {
	r.mu.Lock()
	d := r.done + n
	r.mu.Unlock()
	r.Set(d)
}

// Func returns a callback in the (done, total int) form used by the library.
func (r *Reporter) Func() func(done, total int) {
	return func(done, _ int) { r.Set(int64(done)) }
}

// Done ends the phase and returns its duration.
func (r *Reporter) Done() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	el := time.Since(r.start)
	if r.stopped {
		return el
	}
	r.stopped = true
	if r.w == nil {
		return el
	}
	if r.bar != nil {
		r.bar.Finish()
	}
	fmt.Fprintf(r.w, "%s: done in %s\n", r.name, el.Round(time.Millisecond))
	return el
}

package director

import "runtime"

// lockThread keeps a worker on one OS thread so its CPU affinity sticks.
// The thread is never unlocked: it dies with the goroutine, which keeps a
// pinned thread from being handed back to the scheduler.
func lockThread() { runtime.LockOSThread() }

// Package memlimit finds how much memory this process may use (the
// machine's available memory and its cgroup's limit) and holds the error
// for work that does not fit a memory budget.
package memlimit

// Package apply turns parsed ipvsadm commands into changes of a vs.Table:
// the mapping from ipvsadm's service and real-server options to the
// model's, with ipvsadm's wording for what afvs does not support.
//
// It is shared by the daemon's control server, which applies commands
// from afvsadm to a copy of its table, and by the scheduler simulator,
// which applies a trace's commands the same way; neither needs the other's
// dependencies for it.
package apply

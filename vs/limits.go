package vs

// Sizes the director serves at most. The dataplane keeps its per-service
// and per-real-server counters in fixed arrays of these sizes (a stable
// small ID each), so a table beyond them cannot be put in force; the
// config loader refuses one up front, naming the key.
const (
	// MaxServices is the number of virtual services.
	MaxServices = 1024
	// MaxDests is the number of real servers, over all services together
	// (a server in two services counts twice, as a sorry server counts
	// once more).
	MaxDests = 8192
	// MaxMarkKeys is how many (address, protocol, port) keys one
	// firewall-mark group's port ranges may expand to.
	MaxMarkKeys = 1 << 20
)

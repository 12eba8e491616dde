// Package config defines the afvs daemon's configuration file: its shape
// (the mapstructure tags viper decodes into), the built-in defaults, and
// validation that names the key path, the bad value and the rule it broke.
//
// The package does not read files itself: internal/configfile reads YAML, TOML or JSON
// with viper, applies AFVS_* environment variables and flags, and decodes the
// result into a Config. Everything after that (validation, conversion into the
// vs.Table model and the dataplane's options) lives here so it can be tested
// without viper, root or a network.
package config

// Package deploy holds what an operator installs beside the callguard
// binary, checked by its tests against the code: the Grafana dashboard
// (grafana-dashboard.json) and the Prometheus alerting rules
// (prometheus-rules.yml, with promtool unit tests in
// prometheus-rules.test.yml) over the metrics of projections/metrics, the
// systemd unit (callguard.service) and a sample of its environment file
// (env.example). The README's "Running in production" says how to use
// them. The package has no code: the files are not built into the binary.
package deploy

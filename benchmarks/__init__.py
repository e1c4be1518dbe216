"""fastbp's airspeed velocity suite: see benchmarks/README.md (plain scripts: scripts/)."""

"""The core every stage may use and that uses no stage: errors, atomic I/O, the environment record,
typed cards, shipped weights and weight sources, state-dict loading, terminal output."""

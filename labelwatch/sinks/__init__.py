"""Outputs: ClickHouse (tables, migrations, writer) and Prometheus metrics."""

"""Pure online models (River style): plain dicts and numbers in, no I/O, no clock, no logging.

Nothing here may import faust, kafka, aiokafka, clickhouse_connect or prometheus_client;
``tests/unit/test_layering.py`` enforces it.
"""

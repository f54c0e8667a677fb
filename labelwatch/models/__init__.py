"""Pure online models (River style): plain dicts and numbers in, no I/O, no clock, no logging.

Nothing here may import faust, kafka, aiokafka, clickhouse_connect or prometheus_client;
``tests/unit/test_layering.py`` enforces it.
"""

from labelwatch.models.review import AuditEstimate as AuditEstimate
from labelwatch.models.review import ReviewPick as ReviewPick
from labelwatch.models.review import ReviewPriority as ReviewPriority
from labelwatch.models.review import ReviewSampler as ReviewSampler
from labelwatch.models.review import ReviewScore as ReviewScore
from labelwatch.models.review import audit_estimate as audit_estimate
from labelwatch.models.review import confidence_band as confidence_band

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

# isort: split
# Issue 10: agreement, confusion structure, disagreement attribution (explicit re-exports).
from labelwatch.models.agreement import Coincidence as Coincidence
from labelwatch.models.agreement import StreamingAlpha as StreamingAlpha
from labelwatch.models.attribution import OTHERS as OTHERS
from labelwatch.models.attribution import Concentration as Concentration
from labelwatch.models.attribution import DisagreementAttribution as DisagreementAttribution
from labelwatch.models.attribution import Share as Share
from labelwatch.models.confusion import ConfusedPair as ConfusedPair
from labelwatch.models.confusion import ConfusionCounts as ConfusionCounts
from labelwatch.models.confusion import ConfusionFinding as ConfusionFinding
from labelwatch.models.confusion import ConfusionStructure as ConfusionStructure

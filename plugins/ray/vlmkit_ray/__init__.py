"""vlmkit-ray: label on a Ray cluster through Ray Data, with the run folder of a local run.

``vlmkit label ... --engine ray [--address auto]`` or :func:`vlmkit.ray.label`. See
docs/scale.md. Importing this package imports Ray.
"""

from vlmkit_ray.engine import RayEngine, label
from vlmkit_ray.limiter import Limiter
from vlmkit_ray.plan import Plan, plan
from vlmkit_ray.run import RayRun, connect
from vlmkit_ray.worker import LabelWorker

__all__ = ["LabelWorker", "Limiter", "Plan", "RayEngine", "RayRun", "connect", "label", "plan"]

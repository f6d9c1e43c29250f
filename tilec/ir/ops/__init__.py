"""Every op of the tile IR. Importing this package registers them all in `core.OPS`."""
from __future__ import annotations

from tilec.ir.ops.arith import *  # noqa: F401,F403
from tilec.ir.ops.control import *  # noqa: F401,F403
from tilec.ir.ops.memory import *  # noqa: F401,F403
from tilec.ir.ops.program import *  # noqa: F401,F403
from tilec.ir.ops.tile import *  # noqa: F401,F403
from tilec.ir.core import OPS  # noqa: F401

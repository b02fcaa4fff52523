"""The built-in simulator: :mod:`.core` (the in-process provider with the test numbers),
:mod:`.http` (the same over HTTP in Twilio's, SignalWire's and Telnyx's shapes),
:mod:`.callbacks` (its signed status callbacks) and :mod:`.wire` (the vendors' formats).
"""

from callgate.providers.simulator.core import Simulator

__all__ = ["Simulator"]

"""GAS core library: body model, cameras, rendering, synthetic humans and (later) NeRF and diffusion.

Pure functions and ``torch.nn.Module``s; no orchestration. May import third-party libraries only.
"""

__version__ = "0.1.0"

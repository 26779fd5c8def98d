"""Rendering: textured scans to RGB/mask/depth and body-model normal maps (pyrender, OSMesa/EGL)."""

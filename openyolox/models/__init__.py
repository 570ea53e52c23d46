"""YOLOX networks: building blocks, backbones, necks, the decoupled head."""

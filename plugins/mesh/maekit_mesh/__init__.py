"""maekit-mesh: MeshMAE for triangle meshes."""
__version__ = "0.1.0"

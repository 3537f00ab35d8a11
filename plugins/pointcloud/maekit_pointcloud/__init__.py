"""maekit-pointcloud: MAE3D and Point-MAE for point clouds."""
__version__ = "0.1.0"

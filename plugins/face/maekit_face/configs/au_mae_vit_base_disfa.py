# As au_mae_vit_base_bp4d on DISFA: 8 AUs, present at intensity >= 2, label frame k = image k-1.png.
# DISFA models are often initialised from a BP4D-trained one (JAA-Net, ME-GraphAU): give that as
# --checkpoint only if it is an encoder file; the AU head here starts fresh (8 AUs, not 12).
_base_ = ["au_mae_vit_base_bp4d.py"]
_disfa = dict(type="face_disfa", root="data/DISFA", images="data/DISFA/frames", crops="data/DISFA/crops", size=256,
              threshold=2, frame_offset=-1)
au = dict(data=dict(dataset=dict(_disfa, split="train", fold=1, _delete_=True)), test=dict(_disfa, split="test", fold=1, _delete_=True))

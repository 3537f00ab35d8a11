# Tiny MCM for `maekit demo mcm`: pre-trained on the 5-channel procedural faces (R, G, B, depth,
# thermal: procedural, said so) of fold 1's training subjects, unlabelled; AU detection fine-tunes the
# encoder on RGB alone (the paper's downstream), as face_mae_demo's `au` section. Minutes on 2 CPU cores.
_base_ = ["face_mae_demo.py"]
_faces5 = dict(type="face_procedural", subjects=12, frames=80, size=36, channels=5, split="train", fold=1,
               labelled=False)
model = dict(_delete_=True, type="mcm", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4,
             channels=5, keep=3, mask_ratio=0.75, encoder=dict(embed_dim=128, depth=4, num_heads=4),
             decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4)
_stats5 = dict(mean=[0.485, 0.456, 0.406, 0.5, 0.5], std=[0.229, 0.224, 0.225, 0.25, 0.25])
data = dict(_delete_=True, dataset=_faces5, transform=dict(type="face_au_crop", size=32, train=True, **_stats5),
            batch_size=64, num_workers=0)
eval_transform = dict(type="face_au_crop", size=32, train=False, **_stats5)
probe = dict(train=dict(_faces5, labelled=True), test=dict(_faces5, split="test", labelled=True))

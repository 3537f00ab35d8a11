# Tiny MMAE on the bundled demo tiles (32 px: the immunohistochemistry slide and seven other real
# images; RGB + Ruifrok haematoxylin + eosin; patch 4 → 3 × 64 tokens, 32 visible — the paper's
# sixth): minutes on 2 CPU cores.
_base_ = ["mmae_small_nct.py"]
model = dict(_delete_=True, type="mmae", img_size=32, patch_size=4, embed_dim=128, depth=4, num_heads=4, num_visible=32,
             alphas=(1.0, 1.0, 1.0), decoder_dim=64, decoder_depth=1, decoder_num_heads=4)
data = dict(_delete_=True,
            dataset=dict(type="pathology_demo_tiles", split="train", tile=32, stains="ruifrok"),
            transform=dict(type="mmae_augment", size=32, scale=(0.35, 1.0), flip=True, crop="aligned"),
            batch_size=64,
            num_workers=0)
schedule = dict(max_iters=800, warmup_iters=40, blr=2e-3)
checkpoint_interval = 400
log_interval = 50
probe = dict(_delete_=True,
             train=dict(type="pathology_demo_tiles", split="train", tile=32),
             test=dict(type="pathology_demo_tiles", split="test", tile=32),
             label_counts=(40, 160))
finetune = dict(
    _delete_=True,
    num_classes=8,
    drop_path_rate=0.1,
    data=dict(dataset=dict(type="pathology_label_subset", num_labels=160, fold=0, folds=5,
                           dataset=dict(type="pathology_demo_tiles", split="train", tile=32)),
              transform=dict(type="mmae_augment", size=32, scale=(0.6, 1.0), flip=True), batch_size=32),
    test=dict(type="pathology_demo_tiles", split="test", tile=32),
    schedule=dict(max_iters=200, warmup_iters=20, blr=2e-3, weight_decay=0.05, betas=(0.9, 0.999), layer_decay=0.75),
)

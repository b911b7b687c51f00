import torch, time, tempfile
torch.set_num_threads(1)
from nasmeta.data.tasks import get_task
from nasmeta.spaces.ofa import SMALL_CONFIG, register_ofa_space
from nasmeta.spaces import get_space
from nasmeta.ofa.shrink import ShrinkConfig, PhaseConfig, train_phase, load_checkpoint, checkpoint_path, evaluate_subnet
from nasmeta.training import TrainConfig, train
data = get_task("cifar10").small(200).load()
E=6
for name, sp in (("fixed32", register_ofa_space("ofa-r32", SMALL_CONFIG.model_copy(update={"resolutions": (32,)}))), ("elastic-res", get_space("ofa-small"))):
    cfg = ShrinkConfig(largest=PhaseConfig(epochs=E, lr=0.1), batch_size=128, bn_images=500, num_threads=1)
    d = tempfile.mkdtemp(); t=time.time()
    m = train_phase(sp, data, "largest", cfg, d)
    net,_ = load_checkpoint(checkpoint_path(d,"largest"))
    print(name, m["val_acc_largest"], "test", evaluate_subnet(net, sp.largest(), data, 500, "test"), round(time.time()-t), flush=True)
sp = get_space("ofa-small")
torch.manual_seed(0)
model = sp.build(sp.largest(), 10)
r = train(model, data, TrainConfig(epochs=E, batch_size=128, lr=0.1, weight_decay=3e-5, label_smoothing=0.1, augment=True, device="cpu", num_threads=1))
print("static", r.final_val_acc, r.final_test_acc, flush=True)

#pragma once
// DenseNet-121/169/201 `features`, inflated to 3D, over any backend.
//
// Layout: activations are channels-last (N, D, H, W, C). Each dense block owns one preallocated
// buffer with all of its output channels; the previous stage writes channels [0, C_in) and layer l
// appends its 32 channels at [C_in + 32l, C_in + 32l + 32). Layer l reads the prefix in place (a
// strided view), so the growing concatenation is never copied. Each layer's pre-activation
// (norm1+relu1, norm2+relu2) and each transition's norm+relu are fused into the packing of the conv
// that follows; the stem's norm0+relu0 into conv0's output. Intermediates are materialised only for
// an observer that asks for them. When no observer looks inside (the usual extract), more is fused:
// each layer's conv1 -> norm2+relu2 -> conv2 runs as one DenseLayerConvs (the Cpu one holds 3
// planes of the 128-channel bottleneck, not all of it), the stem runs as one ConvActMaxPool (the
// full-resolution conv0 output never exists), and each transition pools its activated input before
// its 1x1 conv (ActivatedAvgPool; pool and 1x1 conv are linear and commute, so the conv runs on 1/8
// of the voxels and its full-resolution output never exists). Memory: the input, the current and
// next block buffers and the bottleneck (3 planes of it on Cpu, unless a tap looks inside a layer).
#include <array>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "volfeat/nn/densenet_spec.hpp"
#include "volfeat/nn/taps.hpp"
#include "volfeat/ops/batchnorm3d.hpp"
#include "volfeat/ops/conv3d.hpp"
#include "volfeat/ops/fused.hpp"
#include "volfeat/ops/pool3d.hpp"
#include "volfeat/ops/relu.hpp"

namespace volfeat {

inline const WindowGeometry kStemConv = WindowGeometry::cube(7, 2, 3);
inline const WindowGeometry kStemPool = WindowGeometry::cube(3, 2, 1);
inline const WindowGeometry kTransitionPool = WindowGeometry::cube(2, 2, 0);

// An observer with on_progress(done_module, stop_module, name) hears after each dense layer and
// transition, so a long forward pass can show progress.
template <class Observer, class = void>
inline constexpr bool kReportsProgress = false;
template <class Observer>
inline constexpr bool kReportsProgress<
    Observer, std::void_t<decltype(std::declval<Observer&>().on_progress(0, 0, std::string()))>> = true;

template <class Backend, class T>
class DenseNet3d {
 public:
  using backend_type = Backend;
  using value_type = T;

 private:
  using Bn = BatchNorm3d<Backend, T>;
  using Conv = Conv3d<Backend, T>;
  using Buffer = Tensor<Backend, T>;

  struct DenseLayer {
    Bn norm1;
    Conv conv1;
    Bn norm2;
    Conv conv2;
  };
  struct Transition {
    Bn norm;
    Conv conv;
  };

 public:
  // sd: a 3D state_dict (conv weights (O, I, kD, kH, kW)); conv0 takes 1 (gray) or 3 (RGB) channels.
  explicit DenseNet3d(const StateDict& sd) : config_(&detect_densenet(sd)), modules_(densenet_modules(*config_)) {
    if (conv_spatial_dims(sd) != 3)
      fail(sd.origin, ": holds 2D conv weights; inflate it to 3D first (volfeat convert, or load_densenet_weights)");
    stem_channels_ = sd.at("features.conv0.weight").shape[1];
    if (stem_channels_ != 1 && stem_channels_ != 3)
      fail(sd.origin, ": features.conv0.weight takes ", stem_channels_, " input channels, expected 1 (gray) or 3 (RGB)");
    validate_densenet_state_dict(sd, *config_, 3, stem_channels_);
    const DenseNetConfig& c = *config_;
    const std::string f = "features.";
    conv0_ = make_conv(sd, f + "conv0", kStemConv);
    norm0_ = make_bn(sd, f + "norm0");
    for (int b = 0; b < 4; ++b) {
      const std::string block = f + "denseblock" + std::to_string(b + 1);
      for (int l = 0; l < c.block_layers[size_t(b)]; ++l) {
        const std::string p = block + ".denselayer" + std::to_string(l + 1);
        blocks_[size_t(b)].push_back({make_bn(sd, p + ".norm1"), make_conv(sd, p + ".conv1", WindowGeometry::cube(1)),
                                      make_bn(sd, p + ".norm2"),
                                      make_conv(sd, p + ".conv2", WindowGeometry::cube(3, 1, 1))});
      }
      if (b < 3) {
        const std::string t = f + "transition" + std::to_string(b + 1);
        transitions_[size_t(b)] = {make_bn(sd, t + ".norm"), make_conv(sd, t + ".conv", WindowGeometry::cube(1))};
      }
    }
    norm5_ = make_bn(sd, f + "norm5");
  }

  const DenseNetConfig& config() const { return *config_; }
  // 1 for a collapsed (gray) stem, 3 for an RGB stem fed a replicated, per-channel normalised volume.
  Index input_channels() const { return stem_channels_; }
  const std::vector<ModuleInfo>& modules() const { return modules_; }
  int last_module() const { return static_cast<int>(modules_.size()) - 1; }
  int module_index(const std::string& name) const {
    for (size_t i = 0; i < modules_.size(); ++i)
      if (modules_[i].name == name) return static_cast<int>(i);
    fail("unknown module ", name, " in ", config_->name);
  }

  // Spatial size of module `stop`'s output for an input of size `in` (entries <= 0: does not fit).
  std::array<Index, 3> output_spatial(int stop, std::array<Index, 3> in) const {
    for (int i = 0; i <= stop; ++i) {
      const ModuleInfo& m = modules_[size_t(i)];
      if (i == 0) in = kStemConv.out_spatial(in);
      else if (m.kind == ModuleKind::kPool) in = (i == 3 ? kStemPool : kTransitionPool).out_spatial(in);
      for (Index& e : in) e = std::max<Index>(e, 0);
    }
    return in;
  }
  // The smallest input extent per axis that reaches module `stop` with at least one voxel.
  std::array<Index, 3> min_input_size(int stop) const {
    Index n = 1;
    while (output_spatial(stop, {n, n, n})[0] < 1) ++n;
    return {n, n, n};
  }

  // Runs the input (N, D, H, W, input_channels()) through the modules up to and including `stop` (default: all),
  // showing each wanted module's output to `obs`.
  template <class Observer>
  void forward(TensorView<const T> x, Observer& obs, int stop = -1) const {
    if (stop < 0 || stop > last_module()) stop = last_module();
    check_input(x.dims, stop);
    Walker<Observer> w{this, obs, stop};

    // ---- stem: conv0 -> norm0 -> relu0 -> pool0 into block 1's buffer
    const MaxPool3d<Backend, T> pool0(kStemPool);
    Dims grid = pool0.output_dims(conv0_.output_dims(x.dims));
    Buffer block(with_channels(grid, block_output_channels(*config_, 0)));
    const auto pooled0 = block.view().channels(0, config_->init_features);
    if (w.wants(0) || w.wants(1) || w.wants(2) || stop < 3) {
      Buffer stem(conv0_.output_dims(x.dims));
      if (w.wants(0) || w.wants(1) || stop < 2) {
        conv0_.forward(x, stem.view());
        if (w.emit(stem.view())) return;
        norm0_.forward(stem.view(), stem.view());
        if (w.emit(stem.view())) return;
        Relu<Backend, T>::forward(stem.view(), stem.view());
      } else {
        conv0_.forward(x, stem.view(), {}, {&norm0_, true});
        w.skip(2);
      }
      if (w.emit(stem.view())) return;
      pool0.forward(stem.view(), pooled0);
    } else {
      // conv0+norm0+relu0+pool0 in one op: the full-resolution stem output is never stored.
      ConvActMaxPool<Backend, T>::forward(conv0_, {&norm0_, true}, pool0, x, pooled0);
      w.skip(3);
    }
    if (w.emit(pooled0)) return;

    const Index growth = config_->growth_rate;
    for (int b = 0; b < 4; ++b) {
      Index ch = block_input_channels(*config_, b);
      // The bottleneck: whole when a tap looks inside a dense layer, else DenseLayerConvs' scratch.
      Buffer mid;
      const Dims mid_dims = with_channels(grid, Index(config_->bn_size) * growth);
      for (const DenseLayer& layer : blocks_[size_t(b)]) {
        const auto prefix = block.view().channels(0, ch);
        if (w.bn_relu(layer.norm1, prefix)) return;
        const auto added = block.view().channels(ch, growth);
        const int c1 = w.next;  // conv1, then norm2, relu2
        if (!w.wants(c1) && !w.wants(c1 + 1) && !w.wants(c1 + 2) && stop > c1 + 2) {
          // norm2+relu2 folded into conv1's epilogue: conv2 reads an activated buffer as is.
          DenseLayerConvs<Backend, T>::forward(layer.conv1, {&layer.norm1, true}, {&layer.norm2, true}, layer.conv2,
                                               prefix, added, mid);
          w.skip(3);
        } else {
          if (mid.dims() != mid_dims) mid.resize(mid_dims);
          layer.conv1.forward(prefix, mid.view(), {&layer.norm1, true});
          if (w.emit(mid.view())) return;
          if (w.bn_relu(layer.norm2, mid.view())) return;
          layer.conv2.forward(mid.view(), added, {&layer.norm2, true});
        }
        if (w.emit(added)) return;  // conv2
        if (w.emit(added)) return;  // the dense layer: its new features
        ch += growth;
      }
      if (w.emit(block.view())) return;  // the block: the whole concatenation
      if (b == 3) break;
      mid = Buffer();

      const Transition& t = transitions_[size_t(b)];
      const AvgPool3d<Backend, T> pool(kTransitionPool, true);
      if (w.bn_relu(t.norm, block.view())) return;
      const Index squeezed_channels = t.conv.spec().out_channels;
      grid = pool.output_dims(t.conv.output_dims(block.dims()));
      Buffer next(with_channels(grid, block_output_channels(*config_, b + 1)));
      const auto pooled = next.view().channels(0, squeezed_channels);
      if (w.wants(w.next) || w.next == stop) {
        Buffer squeezed(t.conv.output_dims(block.dims()));
        t.conv.forward(block.view(), squeezed.view(), {&t.norm, true});
        if (w.emit(squeezed.view())) return;
        pool.forward(squeezed.view(), pooled);
      } else {
        // Pool first, then the 1x1 conv on 1/8 of the voxels (both linear: they commute).
        Buffer act_pooled(with_channels(grid, block.dims().c));
        ActivatedAvgPool<Backend, T>::forward({&t.norm, true}, pool, block.view(), act_pooled.view());
        t.conv.forward(act_pooled.view(), pooled);
        w.skip(1);
      }
      if (w.emit(pooled)) return;  // pool
      if (w.emit(pooled)) return;  // the transition
      block = std::move(next);
    }
    Buffer out(block.dims());
    norm5_.forward(block.view(), out.view());
    w.emit(out.view());
  }

  void forward(TensorView<const T> x, int stop = -1) const {
    NoTaps none;
    forward(x, none, stop);
  }

 private:
  // Walks the module list in step with the computation: module `next` is the one being produced.
  template <class Observer>
  struct Walker {
    const DenseNet3d* net;
    Observer& obs;
    int stop;
    int next = 0;

    bool wants(int i) const { return obs.wants(net->modules_[size_t(i)].name); }
    // Shows module `next`'s output if wanted; true when it was the last module to run.
    bool emit(TensorView<const T> v) {
      if (wants(next)) obs(net->modules_[size_t(next)].name, v);
      if constexpr (kReportsProgress<Observer>) {
        const ModuleKind k = net->modules_[size_t(next)].kind;
        if (k == ModuleKind::kDenseLayer || k == ModuleKind::kTransition || next == stop)
          obs.on_progress(next, stop, net->modules_[size_t(next)].name);
      }
      return next++ == stop;
    }
    void skip(int count) { next += count; }
    // A norm and relu fused into the next conv: materialised only for the observer.
    bool bn_relu(const Bn& bn, TensorView<const T> in) {
      const bool want_norm = wants(next), want_relu = wants(next + 1);
      if (!want_norm && !want_relu) {
        if (next++ == stop) return true;
        return next++ == stop;
      }
      Buffer tmp(in.dims);
      bn.forward(in, tmp.view(), false);
      if (emit(tmp.view())) return true;
      Relu<Backend, T>::forward(tmp.view(), tmp.view());
      return emit(tmp.view());
    }
  };

  static Dims with_channels(Dims d, Index c) {
    d.c = c;
    return d;
  }

  void check_input(const Dims& x, int stop) const {
    if (x.c != stem_channels_)
      fail("input has ", x.c, " channels; this network's stem takes ", stem_channels_,
           stem_channels_ == 1 ? " (a gray volume)" : " (a gray volume replicated to RGB)");
    const auto out = output_spatial(stop, x.spatial());
    if (out[0] < 1 || out[1] < 1 || out[2] < 1) {
      const char* axes = "DHW";
      std::string need;
      for (int a = 0; a < 3; ++a) {
        Index n = 1;
        while (output_spatial(stop, {n, n, n})[size_t(a)] < 1) ++n;
        need += std::string(a ? " x " : "") + axes[a] + ">=" + std::to_string(n);
      }
      fail("input of size D=", x.d, " H=", x.h, " W=", x.w, " is too small to reach ", modules_[size_t(stop)].name,
           ": it needs at least ", need, " voxels");
    }
  }

  static Conv make_conv(const StateDict& sd, const std::string& name, const WindowGeometry& g) {
    const Param& w = sd.at(name + ".weight");
    return Conv(ConvSpec{w.shape[1], w.shape[0], g}, w.values);
  }
  static Bn make_bn(const StateDict& sd, const std::string& name) {
    BatchNormParams p;
    p.gamma = sd.at(name + ".weight").values;
    p.beta = sd.at(name + ".bias").values;
    p.running_mean = sd.at(name + ".running_mean").values;
    p.running_var = sd.at(name + ".running_var").values;
    return Bn(p);
  }

  const DenseNetConfig* config_;
  Index stem_channels_ = 1;
  std::vector<ModuleInfo> modules_;
  Conv conv0_;
  Bn norm0_;
  std::array<std::vector<DenseLayer>, 4> blocks_;
  std::array<Transition, 3> transitions_;
  Bn norm5_;
};

}  // namespace volfeat

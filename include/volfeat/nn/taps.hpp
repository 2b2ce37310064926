#pragma once
// Observers of a forward pass. The network calls obs.wants(name) before producing a module's
// output and obs(name, view) after it; views are only valid during the call. Fused intermediates
// (a DenseLayer's norm1/relu1/norm2/relu2, the stem's conv0/norm0) are materialised only when
// wanted, so NoTaps costs nothing.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/host_tensor.hpp"
#include "volfeat/core/tensor_view.hpp"

namespace volfeat {

struct NoTaps {
  constexpr bool wants(const std::string&) const { return false; }
  template <class View>
  void operator()(const std::string&, const View&) {}
};

// Copies the wanted modules' outputs to the host, by full torchvision name.
template <class Backend, class T>
class Recorder {
 public:
  explicit Recorder(std::vector<std::string> names, Backend device = {})
      : device_(device), names_(names.begin(), names.end()) {}
  static Recorder everything(Backend device = {}) {
    Recorder r({}, device);
    r.all_ = true;
    return r;
  }

  bool wants(const std::string& name) const { return all_ || names_.count(name) != 0; }
  void operator()(const std::string& name, TensorView<const T> v) {
    taps_[name] = HostTensor<T>{v.dims, to_host(device_, v)};
  }

  bool has(const std::string& name) const { return taps_.count(name) != 0; }
  const HostTensor<T>& at(const std::string& name) const {
    auto it = taps_.find(name);
    if (it == taps_.end()) fail("no tap recorded for ", name);
    return it->second;
  }
  const std::map<std::string, HostTensor<T>>& taps() const { return taps_; }

 private:
  Backend device_;
  std::set<std::string> names_;
  bool all_ = false;
  std::map<std::string, HostTensor<T>> taps_;
};

}  // namespace volfeat

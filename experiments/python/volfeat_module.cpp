// volfeat._volfeat: the compiled half of `import volfeat` (the package's __init__.py is the other).
// Options arrive as the CLI's own argument list (the Python layer turns keywords into --options),
// so extract and sweep parse and validate exactly as `volfeat extract` / `volfeat sweep` do.
// Arrays are (D, H, W) as everywhere in volfeat; activations come back as (C, D, H, W).
// The GIL is released while volfeat computes; Ctrl-C is checked between the steps of a forward pass.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <memory>
#include <new>
#include <omp.h>
#include <optional>
#include <string>
#include <vector>

#include "../extract_command.hpp"
#include "../cohort/merge_command.hpp"
#include "../landmarks_command.hpp"
#include "../preprocess_command.hpp"
#include "../report_command.hpp"
#include "../sweep_command.hpp"
#include "volfeat/backend/cpu/isa.hpp"
#include "volfeat/core/host_blocks.hpp"
#include "volfeat/version.hpp"

namespace py = pybind11;

namespace volfeat::python {

// Progress's interrupt hook: with the GIL re-acquired, run Python's signal handlers; a pending
// KeyboardInterrupt (or any exception a handler raised) unwinds the run as error_already_set.
inline void check_signals() {
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

// threads=N applies to its call only: the CLI's option code sets OpenMP's process-wide thread count,
// which in a long-lived Python process would otherwise carry over into every later call (and into
// the memory estimate's per-thread scratch).
struct ThreadCountRestored {
  int before = omp_get_max_threads();
  ~ThreadCountRestored() { omp_set_num_threads(before); }
};

// A vector handed to numpy without a copy: the capsule owns it.
template <class T>
py::array_t<T> to_numpy(std::vector<T>&& data, std::vector<py::ssize_t> shape) {
  auto* owner = new std::vector<T>(std::move(data));
  py::capsule free_when_done(owner, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owner->data(), free_when_done);
}

py::array_t<double> affine_array(const Grid& g) {
  std::vector<double> a;
  for (const auto& row : g.affine) a.insert(a.end(), row.begin(), row.end());
  return to_numpy(std::move(a), {4, 4});
}

// Runs CLI11 on "volfeat SUBCOMMAND ARGS..." (args as the CLI would get them).
void parse_args(CLI::App& app, const std::string& program, const std::vector<std::string>& args) {
  std::vector<const char*> argv{program.c_str()};
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(int(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    fail(e.what());
  }
}

std::string describe_array(const py::array& a) {
  std::string s = "numpy array (";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? "," : "") + std::to_string(a.shape(i));
  return s + ") " + std::string(py::str(py::object(a.dtype())));
}

std::string voxel_dhw(const Grid& g, size_t i) {
  const int64_t w = int64_t(i) % g.dims[2], h = int64_t(i) / g.dims[2] % g.dims[1], d = int64_t(i) / g.dims[2] / g.dims[1];
  return "(d,h,w)=(" + std::to_string(d) + "," + std::to_string(h) + "," + std::to_string(w) + ")";
}

// f(const T*) on a C-contiguous array of any real or integer dtype.
template <class F>
void visit_array(const py::array& a, const std::string& what, F&& f) {
  if (!(a.flags() & py::array::c_style)) fail(what, ": expected a C-contiguous array");
  const py::dtype dt = a.dtype();
  const void* p = a.data();
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (kind == 'f' && size == 4) return f(static_cast<const float*>(p));
  if (kind == 'f' && size == 8) return f(static_cast<const double*>(p));
  if (kind == 'i' && size == 1) return f(static_cast<const int8_t*>(p));
  if (kind == 'i' && size == 2) return f(static_cast<const int16_t*>(p));
  if (kind == 'i' && size == 4) return f(static_cast<const int32_t*>(p));
  if (kind == 'i' && size == 8) return f(static_cast<const int64_t*>(p));
  if (kind == 'u' && size == 1) return f(static_cast<const uint8_t*>(p));
  if (kind == 'u' && size == 2) return f(static_cast<const uint16_t*>(p));
  if (kind == 'u' && size == 4) return f(static_cast<const uint32_t*>(p));
  if (kind == 'u' && size == 8) return f(static_cast<const uint64_t*>(p));
  if (kind == 'b' && size == 1) return f(static_cast<const bool*>(p));
  fail(what, ": unsupported dtype ", std::string(py::str(py::object(dt))), " (expected an integer or float array)");
}

Grid array_grid(const py::array& a, const std::string& what, const std::array<double, 3>& spacing,
                const std::optional<std::array<std::array<double, 4>, 4>>& affine) {
  if (a.ndim() != 3) fail(what, ": expected a 3-D (D, H, W) array, got ", describe_array(a));
  for (double s : spacing)
    if (!(s > 0) || !std::isfinite(s)) fail("spacing (", spacing[0], ", ", spacing[1], ", ", spacing[2],
                                            "): expected three positive sizes in mm, (D, H, W) order");
  Grid g = make_grid({a.shape(0), a.shape(1), a.shape(2)}, spacing);
  if (affine) g.affine = *affine;
  if (g.voxels() == 0) fail(what, ": the array is empty (", describe_array(a), ")");
  return g;
}

// CT and labels from arrays: the PreparedVolume prepare_volume() would have read from files.
PreparedVolume volume_from_arrays(const ExtractOptions& o, const py::array& ct_in, const py::array& mask_in,
                                  const std::array<double, 3>& spacing,
                                  const std::optional<std::array<std::array<double, 4>, 4>>& affine) {
  PreparedVolume v;
  v.ct_name = "ct: " + describe_array(ct_in);
  v.mask_name = "mask: " + describe_array(mask_in);
  const Grid g = array_grid(ct_in, "ct", spacing, affine);
  const Grid gm = array_grid(mask_in, "mask", spacing, affine);
  if (g.dims != gm.dims)
    fail("mask ", describe_array(mask_in), " and ct ", describe_array(ct_in), ": the arrays' shapes differ");
  // Each array is read once, in its own dtype (the Python layer made it C-contiguous).
  v.ct.grid = g;
  v.ct.data.resize(size_t(g.voxels()));
  size_t bad = 0, first_bad = 0;
  visit_array(ct_in, "ct", [&](const auto* src) {
    for (size_t i = 0; i < v.ct.data.size(); ++i) {
      float x = float(src[i]);
      if (!std::isfinite(x)) {
        if (bad++ == 0) first_bad = i;
        if (o.nan_to) x = *o.nan_to;
      }
      v.ct.data[i] = x;
    }
  });
  if (bad && !o.nan_to)
    fail(v.ct_name, ": ", bad, " voxel", bad == 1 ? " is" : "s are", " NaN or infinite (first at ",
         voxel_dhw(g, first_bad), "); nan_to=VALUE replaces them");
  // Labels: any integer dtype, or floats that hold integers.
  v.mask.grid = g;
  v.mask.data.resize(size_t(g.voxels()));
  visit_array(mask_in, "mask", [&](const auto* src) {
    for (size_t i = 0; i < v.mask.data.size(); ++i) {
      const double m = double(src[i]);
      if (!(m == std::floor(m)))
        fail(v.mask_name, ": not a label map: voxel ", voxel_dhw(g, i), " is ", m, ", not an integer");
      if (m < std::numeric_limits<int32_t>::min() || m > std::numeric_limits<int32_t>::max())
        fail(v.mask_name, ": not a label map: voxel ", voxel_dhw(g, i), " is ", m, ", outside the int32 label range");
      v.mask.data[i] = int32_t(m);
    }
  });
  v.ct_sha256 = sha256_hex(v.ct.data.data(), v.ct.data.size() * sizeof(float));
  v.mask_sha256 = sha256_hex(v.mask.data.data(), v.mask.data.size() * sizeof(int32_t));
  prepare_loaded_volume(o, v);
  return v;
}

// volfeat extract: `args` as the CLI takes them; `ct`/`mask` arrays instead of --ct/--mask.
py::dict extract(const std::vector<std::string>& args, const std::string& command, const py::object& ct_array,
                 const py::object& mask_array, const std::array<double, 3>& spacing,
                 const std::optional<std::array<std::array<double, 4>, 4>>& affine, bool write_out) {
  const ThreadCountRestored threads;
  CLI::App app{"volfeat extract"};
  cli::CommonArgs a;
  add_common_options(&app, a);
  parse_args(app, "volfeat extract", args);
  cli::finish_common_options(&app, a);
  const ExtractOptions& o = a.extract;
  std::optional<PreparedVolume> given;
  if (!ct_array.is_none()) given = volume_from_arrays(o, ct_array.cast<py::array>(), mask_array.cast<py::array>(), spacing, affine);

  ExtractRun r;
  std::string report_csv;
  {
    py::gil_scoped_release nogil;
    Progress progress(a.quiet);
    const auto t0 = Progress::Clock::now();
    r = cli::run_extract<Cpu>(o, progress, command, std::move(given));
    if (write_out) {
      const auto t1 = Progress::Clock::now();
      write_extract_outputs(a.out, r);
      r.timings["write_outputs"] = Progress::since(t1);
      r.timings["total"] = Progress::since(t0);
      write_file_atomic(a.out + "/run.json", run_json(r).dump(2) + "\n");
      progress.note("wrote " + a.out + "/{similarities.csv, similarities_long.csv, features.npz, run.json, "
                    "region_report.csv, region_slices.png}");
    } else {
      r.timings["total"] = Progress::since(t0);
    }
    report_csv = r.region_report;
  }

  py::dict out;
  std::vector<std::string> layers;
  for (const auto& l : r.table.layers) layers.push_back(short_layer(l));
  out["pairs"] = r.table.pairs;
  out["layers"] = layers;
  out["values"] = r.table.value;
  py::dict features;
  for (const auto& [region, by_layer] : r.features.of(r.features.pools.at(0)))
    for (const auto& [layer, vec] : by_layer) features[py::make_tuple(region, layer)] = to_numpy(std::vector<double>(vec), {py::ssize_t(vec.size())});
  out["features"] = features;
  out["run_json"] = run_json(r).dump();
  out["region_report_csv"] = report_csv;
  out["similarities_csv"] = similarities_csv(r.table);
  return out;
}

// A CLI subcommand, exactly, on the CLI's arguments. Returns its exit status: 0, or kExitSomeFailed
// when a cohort's units partly failed (DIR/failures.csv; the Python layer raises VolumesFailed).
// Every other error throws as the CLI's do.
template <class AddCommand>
int run_subcommand(const char* name, AddCommand add, const std::vector<std::string>& args) {
  const ThreadCountRestored threads;
  CLI::App app{"volfeat"};
  app.require_subcommand(1);
  add(app);
  std::vector<std::string> full{name};
  full.insert(full.end(), args.begin(), args.end());
  py::gil_scoped_release nogil;
  try {
    parse_args(app, "volfeat", full);
  } catch (const cli::CohortExit& e) {
    return e.status;
  }
  return 0;
}

// volfeat sweep (one volume, a manifest, a --shard of one).
int sweep(const std::vector<std::string>& args, const std::string& command) {
  return run_subcommand("sweep", [&](CLI::App& app) { cli::add_sweep_command(app, command); }, args);
}

// volfeat extract --manifest (a cohort: DIR/ID per volume and the cohort tables in DIR).
int extract_cohort(const std::vector<std::string>& args, const std::string& command) {
  return run_subcommand("extract", [&](CLI::App& app) { cli::add_extract_command(app, command); }, args);
}

// volfeat landmarks (DIR/{landmarks.csv, landmarks_summary.csv, landmarks_run.json}; the table on stdout).
int landmarks(const std::vector<std::string>& args, const std::string& command) {
  return run_subcommand("landmarks", [&](CLI::App& app) { cli::add_landmarks_command(app, command); }, args);
}

// volfeat preprocess (DIR/{preprocessed.nii.gz, intensity_report.csv, intensity.png, run.json}).
int preprocess(const std::vector<std::string>& args, const std::string& command) {
  return run_subcommand("preprocess", [&](CLI::App& app) { cli::add_preprocess_command(app, command); }, args);
}

// volfeat report --preset NAME (extract's files in DIR; the report's table on stdout).
int report(const std::vector<std::string>& args, const std::string& command) {
  return run_subcommand("report", [&](CLI::App& app) { cli::add_report_command(app, command); }, args);
}

// volfeat merge DIR.
int merge(const std::string& dir) {
  return run_subcommand("merge", [](CLI::App& app) { cli::add_merge_command(app); }, {dir});
}

py::tuple read_nifti(const std::string& path, bool labels) {
  Grid g;
  py::object array;
  if (labels) {
    Volume<int32_t> v;
    {
      py::gil_scoped_release nogil;
      v = read_nifti_labels(path);
    }
    g = v.grid;
    array = to_numpy(std::move(v.data), {g.dims[0], g.dims[1], g.dims[2]});
  } else {
    Volume<float> v;
    {
      py::gil_scoped_release nogil;
      v = read_nifti_float(path);
    }
    g = v.grid;
    array = to_numpy(std::move(v.data), {g.dims[0], g.dims[1], g.dims[2]});
  }
  return py::make_tuple(array, py::make_tuple(g.spacing[0], g.spacing[1], g.spacing[2]), affine_array(g));
}

// The CT as every command reads --ct: a NIfTI file, or a DICOM series directory (`series`: its
// SeriesInstanceUID, needed when the directory holds several), in HU as float32.
py::tuple read_ct(const std::string& path, const std::string& series) {
  CtVolume ct;
  {
    py::gil_scoped_release nogil;
    ct = read_ct_volume(path, ReadOptions{}, series);
  }
  const Grid g = ct.volume.grid;
  py::object array = to_numpy(std::move(ct.volume.data), {g.dims[0], g.dims[1], g.dims[2]});
  return py::make_tuple(array, py::make_tuple(g.spacing[0], g.spacing[1], g.spacing[2]), affine_array(g));
}

// The series of a DICOM directory, as `volfeat info DIR` lists them (no pixel decoded).
py::list list_series(const std::string& dir) {
  std::vector<DicomSeriesSummary> all;
  {
    py::gil_scoped_release nogil;
    all = list_ct_series(dir);
  }
  py::list out;
  for (const DicomSeriesSummary& s : all) {
    py::dict d;
    d["uid"] = s.uid, d["description"] = s.description, d["modality"] = s.modality, d["files"] = s.files;
    out.append(d);
  }
  return out;
}

// The forward pass's observer: records the wanted modules, shows progress, checks for Ctrl-C.
struct ForwardObserver {
  Recorder<Cpu, float>& recorder;
  Progress& progress;
  bool wants(const std::string& name) const { return recorder.wants(name); }
  void operator()(const std::string& name, TensorView<const float> v) { recorder(name, v); }
  void on_progress(int done, int total, const std::string& name) {
    progress.update(double(done) / double(total), short_layer(name));
  }
};

class PyNetwork {
 public:
  PyNetwork(const std::optional<std::string>& weights, const std::optional<std::string>& inflate,
            const std::string& axis, const std::optional<std::string>& stem, uint64_t seed,
            const std::optional<std::string>& arch, bool quiet, const std::string& precision,
            const std::optional<std::string>& stream_weights)
      : quiet_(quiet) {
    ExtractOptions o;
    o.weights = weights.value_or("");
    if (inflate) o.inflate.scheme = *inflate, o.inflate_given = true;
    inflation_scheme(o.inflate.scheme);
    if (axis.size() != 1) fail("axis '", axis, "': expected D, H or W");
    o.inflate.axis = axis[0];
    axis_index(o.inflate.axis);
    if (stem) {
      o.inflate.stem = parse_stem_rule(*stem), o.stem_given = true;  // one line naming an unknown stem
    }
    o.inflate.seed = seed;
    if (arch) {
      const auto names = cli::arch_names();
      if (std::find(names.begin(), names.end(), *arch) == names.end()) fail("arch '", *arch, "': unknown architecture");
      o.arch = *arch, o.arch_given = !o.weights.empty();
    }
    py::gil_scoped_release nogil;
    // The stem's channels: rgb asks for 3; a 3D file holds its own.
    int channels = int(stem_channels(o.inflate.stem));
    if (!stem && !o.weights.empty()) {
      const StateDict sd = read_state_dict(o.weights);
      if (conv_spatial_dims(sd) == 3) channels = int(sd.at(stem_key(sd)).shape[1]);
    }
    // The device first: a bad precision or stream directory is refused before the weights are read.
    const Cpu device = DeviceFor<Cpu>::make({parse_precision(precision), stream_weights.value_or("")}, precision_note_);
    weights_ = load_network_weights(o, channels);
    if (!precision_note_.empty()) Progress(quiet_).warn(precision_note_);
    net_ = std::make_unique<Network<Cpu, float>>(weights_.state, kReleaseWeights, device);
  }
  const std::string& precision_note() const { return precision_note_; }
  std::string precision_kernels() const { return DeviceFor<Cpu>::kernels(net().device()); }

  std::vector<std::string> modules() const {
    std::vector<std::string> names;
    for (const auto& m : net_->modules()) names.push_back(m.name);
    return names;
  }
  std::string resolve(const std::string& selector) const { return resolve_layer(net_->graph(), selector); }

  // x: (D, H, W), or (C, D, H, W) with C = the stem's channels. Returns {selector: (C, D, H, W) float32}.
  py::dict forward(const py::array& x_in, const std::vector<std::string>& layers, std::optional<bool> quiet) const {
    if (layers.empty()) fail("forward: layers is empty; name the modules to return (Network.modules() lists them)");
    std::vector<std::string> full;
    for (const auto& l : layers) full.push_back(resolve_layer(net_->graph(), l));
    const auto x = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(x_in);
    if (!x) throw py::error_already_set();
    const Index c = net_->input_channels();
    Dims dims{1, 0, 0, 0, c};
    std::vector<float> channels_last;  // only for a (C, D, H, W) input with C > 1
    const float* data = x.data();
    if (x.ndim() == 3 && c == 1) {
      dims = {1, x.shape(0), x.shape(1), x.shape(2), 1};
    } else if (x.ndim() == 4 && x.shape(0) == c) {
      dims = {1, x.shape(1), x.shape(2), x.shape(3), c};
      if (c > 1) {
        const Index n = dims.voxels();
        channels_last.resize(size_t(n * c));
        for (Index ch = 0; ch < c; ++ch)
          for (Index v = 0; v < n; ++v) channels_last[size_t(v * c + ch)] = data[ch * n + v];
        data = channels_last.data();
      }
    } else {
      fail("forward: input ", describe_array(x_in), ": expected (D, H, W)",
           c == 1 ? std::string(" (or (1, D, H, W))") : " with " + std::to_string(c) + " channels as (C, D, H, W)",
           " for this network's ", c, "-channel stem");
    }
    int stop = 0;
    for (const auto& n : full) stop = std::max(stop, net_->node_of(n));
    Recorder<Cpu, float> recorder(full);
    {
      py::gil_scoped_release nogil;
      Progress progress(quiet.value_or(quiet_));
      ForwardObserver obs{recorder, progress};
      progress.begin("forward pass");
      net_->forward(TensorView<const float>{data, dims}, obs, stop);
      progress.end();
    }
    py::dict out;
    for (size_t i = 0; i < layers.size(); ++i) {
      const HostTensor<float>& t = recorder.at(full[i]);
      const Index n = t.dims.voxels(), tc = t.dims.c;
      std::vector<float> cdhw(size_t(n * tc));
      for (Index v = 0; v < n; ++v)
        for (Index ch = 0; ch < tc; ++ch) cdhw[size_t(ch * n + v)] = t.data[size_t(v * tc + ch)];
      out[py::str(layers[i])] = to_numpy(std::move(cdhw), {tc, t.dims.d, t.dims.h, t.dims.w});
    }
    return out;
  }

  const NetworkWeights& weights() const { return weights_; }
  const Network<Cpu, float>& net() const { return *net_; }

 private:
  bool quiet_;
  NetworkWeights weights_;
  std::string precision_note_;
  std::unique_ptr<Network<Cpu, float>> net_;
};

}  // namespace volfeat::python

PYBIND11_MODULE(_volfeat, m) {
  using namespace volfeat;
  using namespace volfeat::python;
  m.doc() = "volfeat's compiled core; use the `volfeat` package (its __init__.py) rather than this module";
  // A CPU below this build's baseline, or a VOLFEAT_CPU_ISA it cannot honour: ImportError, not SIGILL.
  if (char buf[512]; cpu::build_baseline_message(buf, sizeof buf)) throw py::import_error(std::string("volfeat: ") + buf);
  if (const std::string problem = cpu::cpu_isa_problem(); !problem.empty()) throw py::import_error("volfeat: " + problem);
  if (const std::string problem = huge_pages_problem(); !problem.empty()) throw py::import_error("volfeat: " + problem);
  m.attr("cpu_isa") = cpu::isa_name(cpu::cpu_isa());  // the Cpu kernels' instruction set (run.json: cpu_isa)
  m.attr("__version__") = VOLFEAT_VERSION_STRING;
  m.attr("dicom_support") = kDicomSupport;  // built with GDCM: ct=DIR, read_ct(DIR), list_series
  Progress::interrupt_check() = check_signals;

  // volfeat's errors as Python's: the message is the line the CLI prints after "volfeat: error: ".
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const MissingFileError& e) {
      PyErr_SetString(PyExc_FileNotFoundError, e.what());
    } catch (const MemoryLimitError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError,
                      "out of memory; shrink the input (resample=MM, crop_to_labels=MARGIN_MM) or set max_memory "
                      "to be stopped before a run starts");
    }
  });

  m.def("extract", &extract, py::arg("args"), py::arg("command"), py::arg("ct_array"), py::arg("mask_array"),
        py::arg("spacing"), py::arg("affine"), py::arg("write_out"));
  m.def("sweep", &sweep, py::arg("args"), py::arg("command"));
  m.def("extract_cohort", &extract_cohort, py::arg("args"), py::arg("command"));
  m.def("merge", &merge, py::arg("dir"));
  m.def("landmarks", &landmarks, py::arg("args"), py::arg("command"));
  m.def("preprocess", &preprocess, py::arg("args"), py::arg("command"));
  m.def("report", &report, py::arg("args"), py::arg("command"));
  // A report preset's JSON (experiments/reports/NAME.json, compiled in): its settings and published table.
  m.def("report_preset", [](const std::string& name) { return cli::report_preset(name).dump(); }, py::arg("name"));
  m.attr("EXIT_SOME_FAILED") = cli::kExitSomeFailed;
  m.def("read_nifti", &read_nifti, py::arg("path"), py::arg("labels") = false);
  m.def("read_ct", &read_ct, py::arg("path"), py::arg("series") = "");
  m.def("list_series", &list_series, py::arg("dir"));

  py::class_<PyNetwork>(m, "Network")
      .def(py::init<const std::optional<std::string>&, const std::optional<std::string>&, const std::string&,
                    const std::optional<std::string>&, uint64_t, const std::optional<std::string>&, bool,
                    const std::string&, const std::optional<std::string>&>(),
           py::arg("weights"), py::arg("inflate"), py::arg("axis"), py::arg("stem"), py::arg("seed"), py::arg("arch"),
           py::arg("quiet"), py::arg("precision"), py::arg("stream_weights"))
      .def("forward", &PyNetwork::forward, py::arg("x"), py::arg("layers"), py::arg("quiet") = std::nullopt)
      .def("modules", &PyNetwork::modules)
      .def("resolve", &PyNetwork::resolve, py::arg("selector"))
      .def_property_readonly("arch", [](const PyNetwork& n) { return n.net().arch(); })
      .def_property_readonly("precision",
                             [](const PyNetwork& n) { return std::string(precision_name(n.net().device().precision)); })
      .def_property_readonly("precision_note", &PyNetwork::precision_note)
      .def_property_readonly("precision_kernels", &PyNetwork::precision_kernels)
      .def_property_readonly("stream_weights",
                             [](const PyNetwork& n) -> std::optional<std::string> {
                               const auto& f = n.net().device().weight_file;
                               return f ? std::optional<std::string>(f->dir()) : std::nullopt;
                             })
      .def_property_readonly("input_channels", [](const PyNetwork& n) { return n.net().input_channels(); })
      .def_property_readonly("kind", [](const PyNetwork& n) { return n.weights().kind; })
      .def_property_readonly("sha256", [](const PyNetwork& n) { return n.weights().sha256; })
      .def_property_readonly("description", [](const PyNetwork& n) { return n.weights().description; })
      .def_property_readonly("meta", [](const PyNetwork& n) { return state_dict_meta(n.weights().state).dump(); });
}

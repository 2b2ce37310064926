#pragma once
// Landmark matching, the evaluation of Avants et al. ("Deep Volumetric Feature Encoding for
// Biomedical Images"): a landmark of a template is looked for in a target as the voxel whose patch
// features are nearest the template's, and the error in mm is compared before and after matching.
//
// The experiment needs no hand-placed landmarks: the target is the template under a known rigid
// transform T (rotation about a centre, then translation, in world mm), resampled onto the template's
// grid, so each template landmark x has the true target position T(x). One concern per header:
//
//   landmarks/geometry.hpp        voxel <-> world, RigidTransform, the target by trilinear (CT) and
//                                 nearest (labels) resampling of the template under T (Eigen 3x3 algebra,
//                                 the trilinear sampler of pipeline/trilinear.hpp)
//   landmarks/definition.hpp      per label: the centroid and the 6 extreme points along -D,+D,-H,+H,-W,+W
//   landmarks/patch_features.hpp  a cubic patch of P voxels through the network up to the layer, global
//                                 average of its map; the --dense approximation
//   landmarks/networks.hpp        the scheme networks, volfeat's seeded 2D init
//   landmarks/matching.hpp        candidates on a stride-S grid within R mm of the landmark's untransformed
//                                 position, nearest L2-normalised features; the experiment's results
//   landmarks/t_test.hpp          paired t-test, Student's t CDF by the regularised incomplete beta function
//   landmarks/csv.hpp             landmarks.csv and landmarks_summary.csv
//
// The options' text forms (--rotate, --translate, --patch) are parsed in experiments/landmark_args.hpp.
#include "volfeat/pipeline/landmarks/csv.hpp"
#include "volfeat/pipeline/landmarks/definition.hpp"
#include "volfeat/pipeline/landmarks/geometry.hpp"
#include "volfeat/pipeline/landmarks/matching.hpp"
#include "volfeat/pipeline/landmarks/networks.hpp"
#include "volfeat/pipeline/landmarks/patch_features.hpp"
#include "volfeat/pipeline/landmarks/t_test.hpp"

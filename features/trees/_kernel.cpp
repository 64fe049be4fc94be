// Compiled kernels for LightGBM tree ensembles: plain predictions and exact path-dependent
// TreeSHAP contributions, equal to LightGBM's own `predict` and `predict(pred_contrib=True)`.
//
// The Python side (features/trees/forest.py) reads LightGBM's model text and hands this module
// flat arrays; `build` turns them into a Forest (a capsule) with everything that does not depend
// on a row precomputed. Decisions follow LightGBM's Tree::NumericalDecision and
// Tree::CategoricalDecision exactly, after the zeroing of |x| <= kZeroThreshold that LightGBM's
// dense-matrix reader applies to every value.
//
// TreeSHAP: for a leaf whose path holds the distinct features F (d of them) with zero fractions
// z_j (products of child/parent training counts, as LightGBM's data_count) and one fractions
// o_j in {0, 1} (does the row follow the path at every node of feature j), the Shapley value of
// feature i is v * (o_i - z_i) * sum_{S subset of P \ {i}} w(|S|) prod_{j in F \ S \ {i}} z_j,
// w(s) = s! (d-1-s)! / d!, P = {j : o_j = 1}. Only P depends on the row, so for d <= kTableMax
// the sums are tabulated per leaf for every P (2^d entries, FastTreeSHAP v2's idea, with
// LightGBM's own missing-value and categorical decisions); a row then costs one pass over the
// tree's nodes for P and d lookups per leaf. Longer paths use LightGBM's extend/unwind
// recursion on the leaf's merged path. Rows run in parallel on std::threads, the GIL released.

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr double kZeroThreshold = 1e-35f;  // LightGBM's meta.h, a float literal as double
constexpr uint8_t kCategorical = 1;        // LightGBM's decision_type bits
constexpr uint8_t kDefaultLeft = 2;
constexpr int kMissingZero = 1;
constexpr int kMissingNaN = 2;
constexpr uint8_t kZeroDefault = 4;  // our node flags: missing_type Zero / NaN
constexpr uint8_t kNaNDefault = 8;
constexpr uint8_t kNaNRight = 16;  // where a NaN goes, LightGBM's rules resolved per node
constexpr int kMaxPathFeatures = 64;
constexpr int kBlockRows = 256;
constexpr int kGroup = 8;

struct Node {
  double threshold;  // a leaf's value for leaves
  int32_t feature;
  int32_t child[2];  // left, right
  uint8_t flags;
  uint8_t pad;
  uint16_t cat_words;
  uint32_t cat_begin;
};

struct LeafShap {
  int32_t depth;        // d, distinct features on the path
  int32_t elem_begin;   // into feature / zero (and twice into coef_pair)
  int64_t table_begin;  // into table, or -1 for the extend/unwind path
  double value;
};

struct Tree {
  int32_t internal = 0;  // nodes [0, internal) are splits, [internal, size) leaves
  int32_t depth = 0;
  bool has_categorical = false;
  double expected_value = 0.0;
  std::vector<Node> nodes;
  std::vector<uint32_t> cats;
  std::vector<int32_t> preorder;
  std::vector<uint8_t> slot;  // per split: its feature's position on the path from the root
  std::vector<LeafShap> leaves;
  std::vector<int32_t> feature;
  std::vector<double> zero;
  std::vector<double> coef_pair;  // -1, (1 - z) / z per path feature
  std::vector<double> table;     // v * H(Q)
};

// QuickScorer (Lucchese et al., SIGIR 2015) for plain predictions: per tree a bitmask of its
// leaves in left-to-right order; a split that sends the row right clears the leaves of its
// left subtree; the row's leaf is then the lowest bit left. Splits are grouped by feature and
// numerical thresholds sorted, so a row visits only the splits it goes right at.
struct Exclusion {
  uint64_t mask;  // the tree's leaves that stay possible when the split goes right
  uint32_t tree;
  uint32_t split;  // the split's node, for categorical bitsets
};

struct FeatureSplits {  // [begin, end) ranges into QuickScorer's arrays
  int64_t sorted[2], zero_sorted[2], nan_right[2], zero_right[2], categorical[2];
};

struct QuickScorer {
  bool usable = false;  // every tree has at most 64 leaves
  std::vector<FeatureSplits> features;
  std::vector<double> threshold;  // parallel to the sorted ranges of `exclusions`
  std::vector<Exclusion> exclusions;
  std::vector<Node> categorical;     // parallel to `exclusions`: the categorical splits
  std::vector<uint32_t> cats;        // their bitsets, all trees
  std::vector<int64_t> tree_values;  // offset of each tree's leaf values (left to right)
  std::vector<double> values;
  std::vector<uint32_t> split_id;     // parallel to `exclusions`: the split's forest-wide number
  std::vector<int64_t> tree_splits;   // forest-wide number of each tree's split 0
  int64_t splits = 0;
};

struct Forest {
  int32_t num_features = 0;
  std::vector<Tree> trees;
  QuickScorer quick;
};

inline double zeroed(double x) {
  return (std::fabs(x) > kZeroThreshold || std::isnan(x)) ? x : 0.0;
}

// LightGBM's NumericalDecision on a zeroed value, in integer arithmetic so that the compiler
// emits no branch: a NaN goes where LightGBM sends it (the default side for missing_type Zero
// or NaN, else where 0.0 goes), a zero to the default side for missing_type Zero, anything else
// right when above the threshold. Returns 1 for right.
inline int numerical_right(const Node& node, double x) {
  const int flags = node.flags;
  const int above = x > node.threshold;
  const int is_nan = x != x;
  const int use_default = (x == 0.0) & (flags >> 2);  // kZeroDefault is bit 2
  const int default_right = ((flags >> 1) & 1) ^ 1;
  const int nan_right = (flags >> 4) & 1;
  const int value = (above & (use_default - 1)) | (default_right & -use_default);
  return (value & (is_nan - 1)) | (nan_right & -is_nan);
}

// The integer category LightGBM's CategoricalDecision looks up, or -1 where it goes right
// without looking (NaN, negative, or no int: static_cast<int> gives INT_MIN on x86).
inline int32_t category_of(double x) {
  return (x > -1.0 && x < 2147483648.0) ? static_cast<int32_t>(x) : -1;
}

// CategoricalDecision on category_of(x): left when the category is in the split's bitset.
inline int categorical_right(const Node& node, int32_t category, const uint32_t* cats) {
  const auto word = static_cast<uint32_t>(category) >> 5;  // -1 becomes too large
  const int inside = word < node.cat_words;
  const uint32_t bits = cats[node.cat_begin + (word & -static_cast<uint32_t>(inside))];
  return (inside & static_cast<int>((bits >> (category & 31)) & 1u)) ^ 1;
}

template <bool HasCategorical>
inline int decide_right(const Node& node, double x, int32_t category, const uint32_t* cats) {
  if (!HasCategorical) return numerical_right(node, x);
  const int is_categorical = node.flags & kCategorical;
  const int numerical = numerical_right(node, x);
  const int categorical = categorical_right(node, category, cats);
  return (categorical & -is_categorical) | (numerical & (is_categorical - 1));
}

// ---------------------------------------------------------------- building a forest

struct Source {  // the flat arrays the Python side passes, over all trees
  const int64_t* tree_nodes;   // T + 1 offsets into the split arrays
  const int64_t* tree_leaves;  // T + 1 offsets into the leaf arrays
  const int64_t* tree_cat_bounds;  // T + 1 offsets into cat_boundaries
  const int64_t* tree_cat_words;   // T + 1 offsets into cat_threshold
  const int32_t* split_feature;
  const double* threshold;
  const int32_t* decision_type;
  const int32_t* left_child;
  const int32_t* right_child;
  const double* internal_count;
  const double* leaf_value;
  const double* leaf_count;
  const int32_t* cat_boundaries;
  const uint32_t* cat_threshold;
  int64_t num_trees;
};

int32_t node_index(int32_t lightgbm_child, int32_t internal) {
  return lightgbm_child >= 0 ? lightgbm_child : internal + ~lightgbm_child;
}

// e_k of the z's in every subset Q of d features, then v * H(Q) for every Q (see the header).
void fill_table(const double* z, int d, double value, double* out) {
  const int subsets = 1 << d;
  std::vector<double> weight(d, 0.0);  // w(s) = s! (d-1-s)! / d!
  for (int s = 0; s < d; ++s) {
    double w = 1.0 / d;
    for (int k = 1; k <= s; ++k) w *= static_cast<double>(k) / (d - k);
    weight[s] = w;
  }
  std::vector<double> elementary(static_cast<size_t>(subsets) * (d + 1), 0.0);
  std::vector<double> outside(subsets, 1.0);
  elementary[0] = 1.0;
  for (int q = 1; q < subsets; ++q) {
    const int low = __builtin_ctz(q);
    const int rest = q & (q - 1);
    const double* from = &elementary[static_cast<size_t>(rest) * (d + 1)];
    double* to = &elementary[static_cast<size_t>(q) * (d + 1)];
    to[0] = from[0];
    for (int k = 1; k <= d; ++k) to[k] = from[k] + z[low] * from[k - 1];
  }
  const int full = subsets - 1;
  for (int q = 0; q < subsets; ++q) {
    double product = 1.0;
    for (int j = 0; j < d; ++j)
      if (!((q >> j) & 1)) product *= z[j];
    outside[q] = product;
  }
  for (int q = 0; q < subsets; ++q) {
    if (q == full) {
      out[q] = 0.0;  // never looked up: a feature is always taken out of P
      continue;
    }
    const int size = __builtin_popcount(q);
    const double* e = &elementary[static_cast<size_t>(q) * (d + 1)];
    double sum = 0.0;
    for (int k = 0; k <= size; ++k) sum += weight[size - k] * e[k];
    out[q] = value * outside[q] * sum;
  }
}

struct PathEntry {
  int32_t feature;
  double zero;
};

void build_tree(const Source& src, int64_t t, int table_max, Tree& tree) {
  const int64_t n0 = src.tree_nodes[t], n1 = src.tree_nodes[t + 1];
  const int64_t l0 = src.tree_leaves[t], l1 = src.tree_leaves[t + 1];
  const int32_t internal = static_cast<int32_t>(n1 - n0);
  const int32_t num_leaves = static_cast<int32_t>(l1 - l0);
  if (num_leaves != internal + 1) throw std::runtime_error("tree with leaves != splits + 1");
  tree.internal = internal;
  tree.nodes.resize(internal + num_leaves);
  const int64_t b0 = src.tree_cat_bounds[t], b1 = src.tree_cat_bounds[t + 1];
  const int64_t w0 = src.tree_cat_words[t], w1 = src.tree_cat_words[t + 1];
  tree.cats.assign(src.cat_threshold + w0, src.cat_threshold + w1);
  const auto empty_word = static_cast<uint32_t>(tree.cats.size());
  tree.cats.push_back(0);  // what numerical nodes point at, so that lookups stay inside
  for (int32_t i = 0; i < internal; ++i) {
    Node& node = tree.nodes[i];
    const int32_t decision = src.decision_type[n0 + i];
    node.threshold = src.threshold[n0 + i];
    node.feature = src.split_feature[n0 + i];
    node.child[0] = node_index(src.left_child[n0 + i], internal);
    node.child[1] = node_index(src.right_child[n0 + i], internal);
    node.flags = 0;
    node.cat_words = 0;
    node.cat_begin = empty_word;
    if (decision & kCategorical) {
      const int64_t cat = static_cast<int64_t>(node.threshold);
      if (cat < 0 || b0 + cat + 1 >= b1)
        throw std::runtime_error("categorical split outside cat_boundaries");
      node.flags |= kCategorical;
      node.cat_begin = static_cast<uint32_t>(src.cat_boundaries[b0 + cat]);
      node.cat_words =
          static_cast<uint16_t>(src.cat_boundaries[b0 + cat + 1] - src.cat_boundaries[b0 + cat]);
      tree.has_categorical = true;
      if (node.cat_begin + node.cat_words > empty_word)
        throw std::runtime_error("categorical bitset outside cat_threshold");
    } else {
      const int missing = (decision >> 2) & 3;
      if (missing == kMissingZero) node.flags |= kZeroDefault;
      if (missing == kMissingNaN) node.flags |= kNaNDefault;
    }
    if (decision & kDefaultLeft) node.flags |= kDefaultLeft;
    if (!(node.flags & kCategorical)) {
      const bool to_default = node.flags & (kZeroDefault | kNaNDefault);
      const bool right = to_default ? !(node.flags & kDefaultLeft) : !(0.0 <= node.threshold);
      if (right) node.flags |= kNaNRight;
    }
  }
  for (int32_t j = 0; j < num_leaves; ++j) {
    Node& leaf = tree.nodes[internal + j];
    leaf = Node{src.leaf_value[l0 + j], 0, {internal + j, internal + j}, 0, 0, 0, empty_word};
  }

  // expected value, exactly as LightGBM's Tree::ExpectedValue
  if (num_leaves == 1) {
    tree.expected_value = src.leaf_value[l0];
  } else {
    const double total = src.internal_count[n0];
    double expected = 0.0;
    for (int32_t j = 0; j < num_leaves; ++j)
      expected += (src.leaf_count[l0 + j] / total) * src.leaf_value[l0 + j];
    tree.expected_value = expected;
  }

  auto count = [&](int32_t index) {
    return index < internal ? src.internal_count[n0 + index]
                            : src.leaf_count[l0 + index - internal];
  };
  tree.slot.assign(internal, 0);
  tree.leaves.resize(num_leaves);
  // depth-first from the root, keeping the path's distinct features and their zero fractions
  struct Frame {
    int32_t index;
    int32_t depth;
    std::vector<PathEntry> path;
  };
  std::vector<Frame> stack;
  stack.push_back({0, 0, {}});
  while (!stack.empty()) {
    Frame frame = std::move(stack.back());
    stack.pop_back();
    tree.preorder.push_back(frame.index);
    tree.depth = std::max(tree.depth, frame.depth);
    if (frame.index >= internal) {
      const int32_t j = frame.index - internal;
      LeafShap& leaf = tree.leaves[j];
      const int d = static_cast<int>(frame.path.size());
      if (d > kMaxPathFeatures) throw std::runtime_error("a path with more than 64 features");
      leaf.depth = d;
      leaf.value = src.leaf_value[l0 + j];
      leaf.elem_begin = static_cast<int32_t>(tree.feature.size());
      std::vector<double> z(d);
      for (int k = 0; k < d; ++k) {
        z[k] = frame.path[k].zero;
        if (!(z[k] > 0.0)) throw std::runtime_error("a node with no training rows");
        tree.feature.push_back(frame.path[k].feature);
        tree.zero.push_back(z[k]);
        tree.coef_pair.push_back(-1.0);  // (o - z) / z for o = 0 and o = 1
        tree.coef_pair.push_back((1.0 - z[k]) / z[k]);
      }
      if (d > 0 && d <= table_max) {
        leaf.table_begin = static_cast<int64_t>(tree.table.size());
        tree.table.resize(tree.table.size() + (size_t(1) << d));
        fill_table(z.data(), d, leaf.value, tree.table.data() + leaf.table_begin);
      } else {
        leaf.table_begin = -1;
      }
      continue;
    }
    const Node& node = tree.nodes[frame.index];
    int slot = 0;
    while (slot < static_cast<int>(frame.path.size()) && frame.path[slot].feature != node.feature)
      ++slot;
    if (slot >= kMaxPathFeatures) throw std::runtime_error("a path with more than 64 features");
    tree.slot[frame.index] = static_cast<uint8_t>(slot);
    const double parent = count(frame.index);
    // push right first so that the left subtree comes next in the preorder
    for (const int32_t child : {node.child[1], node.child[0]}) {
      std::vector<PathEntry> path = frame.path;
      const double ratio = count(child) / parent;
      if (slot < static_cast<int>(path.size()))
        path[slot].zero = ratio * path[slot].zero;
      else
        path.push_back({node.feature, ratio});
      stack.push_back({child, frame.depth + 1, std::move(path)});
    }
  }
}

// ---------------------------------------------------------------- predictions

template <bool HasCategorical>
inline void tree_values(const Tree& tree, const double* rows, const int32_t* categories,
                        int64_t count, int64_t F, double* acc) {
  const Node* nodes = tree.nodes.data();
  const uint32_t* cats = tree.cats.data();
  int64_t r = 0;
  // kGroup rows walk the tree side by side, a fixed number of steps (leaves loop onto
  // themselves), so that their independent loads and compares overlap without branches
  for (; r + kGroup <= count; r += kGroup) {
    int32_t index[kGroup] = {0};
    const double* base = rows + r * F;
    const int32_t* codes = categories + r * F;
    for (int step = 0; step < tree.depth; ++step) {
      for (int g = 0; g < kGroup; ++g) {
        const Node& node = nodes[index[g]];
        const int64_t at = g * F + node.feature;
        index[g] = node.child[decide_right<HasCategorical>(node, base[at], codes[at], cats)];
      }
    }
    for (int g = 0; g < kGroup; ++g) acc[r + g] += nodes[index[g]].threshold;
  }
  for (; r < count; ++r) {
    int32_t index = 0;
    const double* row = rows + r * F;
    const int32_t* codes = categories + r * F;
    while (index < tree.internal) {
      const Node& node = nodes[index];
      const int32_t f = node.feature;
      index = node.child[decide_right<HasCategorical>(node, row[f], codes[f], cats)];
    }
    acc[r] += nodes[index].threshold;
  }
}

// Leaves of every tree in left-to-right order, and each split's exclusion mask, by feature.
void build_quickscorer(Forest& forest) {
  QuickScorer& quick = forest.quick;
  for (const Tree& tree : forest.trees)
    if (tree.nodes.size() - tree.internal > 64) return;
  struct Entry {
    int kind;  // 0 sorted, 1 zero_sorted, 2 nan_right, 3 zero_right, 4 categorical
    int32_t feature;
    double threshold;
    Exclusion exclusion;
  };
  std::vector<Entry> entries;
  for (const Tree& tree : forest.trees) {
    quick.tree_splits.push_back(quick.splits);
    quick.splits += tree.internal;
  }
  if (quick.splits >= (int64_t(1) << 32)) return;
  for (uint32_t t = 0; t < forest.trees.size(); ++t) {
    const Tree& tree = forest.trees[t];
    quick.tree_values.push_back(static_cast<int64_t>(quick.values.size()));
    // in-order walk: each split's left subtree covers a run [first, last) of leaf positions
    std::vector<int32_t> first(tree.nodes.size()), last(tree.nodes.size());
    std::vector<std::pair<int32_t, bool>> stack{{0, false}};
    while (!stack.empty()) {
      auto [index, done] = stack.back();
      stack.pop_back();
      if (index >= tree.internal) {
        first[index] = static_cast<int32_t>(quick.values.size() - quick.tree_values.back());
        last[index] = first[index] + 1;
        quick.values.push_back(tree.nodes[index].threshold);
      } else if (!done) {
        const Node& node = tree.nodes[index];
        stack.push_back({index, true});
        stack.push_back({node.child[1], false});
        stack.push_back({node.child[0], false});
      } else {
        const Node& node = tree.nodes[index];
        first[index] = first[node.child[0]];
        last[index] = last[node.child[1]];
        const int32_t lo = first[node.child[0]], width = last[node.child[0]] - lo;
        const uint64_t left = (width == 64 ? ~uint64_t(0) : ((uint64_t(1) << width) - 1)) << lo;
        const Exclusion exclusion{~left, t, static_cast<uint32_t>(index)};
        if (node.flags & kCategorical) {
          entries.push_back({4, node.feature, 0.0, exclusion});
          continue;
        }
        const bool zero_typed = node.flags & kZeroDefault;
        entries.push_back({zero_typed ? 1 : 0, node.feature, node.threshold, exclusion});
        if (node.flags & kNaNRight) entries.push_back({2, node.feature, 0.0, exclusion});
        if (zero_typed && !(node.flags & kDefaultLeft))
          entries.push_back({3, node.feature, 0.0, exclusion});
      }
    }
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.feature != b.feature) return a.feature < b.feature;
    if (a.kind != b.kind) return a.kind < b.kind;
    return a.threshold < b.threshold;
  });
  quick.features.assign(forest.num_features, FeatureSplits{});
  for (size_t k = 0; k < entries.size(); ++k) {
    const Entry& entry = entries[k];
    FeatureSplits& splits = quick.features[entry.feature];
    int64_t* range[5] = {splits.sorted, splits.zero_sorted, splits.nan_right, splits.zero_right,
                         splits.categorical};
    const auto position = static_cast<int64_t>(k);
    if (k == 0 || entries[k - 1].feature != entry.feature || entries[k - 1].kind != entry.kind)
      range[entry.kind][0] = position;
    range[entry.kind][1] = position + 1;
    quick.threshold.push_back(entry.threshold);
    quick.exclusions.push_back(entry.exclusion);
    quick.split_id.push_back(
        static_cast<uint32_t>(quick.tree_splits[entry.exclusion.tree] + entry.exclusion.split));
    Node split = forest.trees[entry.exclusion.tree].nodes[entry.exclusion.split];
    if (entry.kind == 4) {
      const std::vector<uint32_t>& words = forest.trees[entry.exclusion.tree].cats;
      const auto begin = static_cast<uint32_t>(quick.cats.size());
      quick.cats.insert(quick.cats.end(), words.begin() + split.cat_begin,
                        words.begin() + split.cat_begin + split.cat_words);
      split.cat_begin = begin;
    }
    quick.categorical.push_back(split);
  }
  quick.cats.push_back(0);
  quick.usable = true;
}

inline void exclude(uint64_t* masks, const Exclusion* exclusions, const int64_t* range) {
  for (int64_t k = range[0]; k < range[1]; ++k)
    masks[exclusions[k].tree] &= exclusions[k].mask;
}

inline void exclude_below(uint64_t* masks, const QuickScorer& quick, const int64_t* range,
                          double x) {
  const double* threshold = quick.threshold.data();
  const Exclusion* exclusions = quick.exclusions.data();
  for (int64_t k = range[0]; k < range[1] && threshold[k] < x; ++k)
    masks[exclusions[k].tree] &= exclusions[k].mask;
}

double quick_score(const Forest& forest, const double* row, uint64_t* masks) {
  const QuickScorer& quick = forest.quick;
  const size_t trees = forest.trees.size();
  std::fill(masks, masks + trees, ~uint64_t(0));
  const Exclusion* exclusions = quick.exclusions.data();
  for (int32_t f = 0; f < forest.num_features; ++f) {
    const FeatureSplits& splits = quick.features[f];
    const double x = row[f];
    if (std::isnan(x)) {
      exclude(masks, exclusions, splits.nan_right);
    } else {
      exclude_below(masks, quick, splits.sorted, x);
      if (x == 0.0)
        exclude(masks, exclusions, splits.zero_right);
      else
        exclude_below(masks, quick, splits.zero_sorted, x);
    }
    if (splits.categorical[0] < splits.categorical[1]) {
      const int32_t category = category_of(x);
      const Node* nodes = quick.categorical.data();
      const uint32_t* cats = quick.cats.data();
      for (int64_t k = splits.categorical[0]; k < splits.categorical[1]; ++k) {
        const uint64_t right = categorical_right(nodes[k], category, cats);
        masks[exclusions[k].tree] &= exclusions[k].mask | (right - 1);
      }
    }
  }
  double sum = 0.0;
  const double* values = quick.values.data();
  const int64_t* offsets = quick.tree_values.data();
  for (size_t t = 0; t < trees; ++t) sum += values[offsets[t] + __builtin_ctzll(masks[t])];
  return sum;
}

// For contributions: which splits of the whole forest send a zeroed row right, one bit each,
// from the same feature-ordered lists as quick_score (a visit per split that goes right).
void split_decisions(const QuickScorer& quick, const double* row, int32_t num_features,
                     uint64_t* right) {
  std::fill(right, right + (quick.splits + 63) / 64, uint64_t(0));
  const uint32_t* id = quick.split_id.data();
  const double* threshold = quick.threshold.data();
  auto set = [&](int64_t k) { right[id[k] >> 6] |= uint64_t(1) << (id[k] & 63); };
  for (int32_t f = 0; f < num_features; ++f) {
    const FeatureSplits& splits = quick.features[f];
    const double x = row[f];
    if (std::isnan(x)) {
      for (int64_t k = splits.nan_right[0]; k < splits.nan_right[1]; ++k) set(k);
    } else {
      for (int64_t k = splits.sorted[0]; k < splits.sorted[1] && threshold[k] < x; ++k) set(k);
      if (x == 0.0) {
        for (int64_t k = splits.zero_right[0]; k < splits.zero_right[1]; ++k) set(k);
      } else {
        for (int64_t k = splits.zero_sorted[0]; k < splits.zero_sorted[1] && threshold[k] < x;
             ++k)
          set(k);
      }
    }
    if (splits.categorical[0] < splits.categorical[1]) {
      const int32_t category = category_of(x);
      const Node* nodes = quick.categorical.data();
      const uint32_t* cats = quick.cats.data();
      for (int64_t k = splits.categorical[0]; k < splits.categorical[1]; ++k)
        right[id[k] >> 6] |= static_cast<uint64_t>(categorical_right(nodes[k], category, cats))
                             << (id[k] & 63);
    }
  }
}

enum Transform { kRaw = 0, kSigmoid = 1 };

inline double transformed(int transform, double sigmoid, double raw) {
  // LightGBM's BinaryLogloss / CrossEntropy::ConvertOutput (1.0f promotes to double)
  return transform == kSigmoid ? 1.0f / (1.0f + std::exp(-sigmoid * raw)) : raw;
}

void predict_rows(const Forest& forest, const double* X, int64_t begin, int64_t end,
                  int transform, double sigmoid, double* out) {
  const int64_t F = forest.num_features;
  if (forest.quick.usable) {
    std::vector<uint64_t> masks(forest.trees.size() + 1);
    std::vector<double> row(F);
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t f = 0; f < F; ++f) row[f] = zeroed(X[r * F + f]);
      out[r] = transformed(transform, sigmoid, quick_score(forest, row.data(), masks.data()));
    }
    return;
  }
  std::vector<double> rows(static_cast<size_t>(kBlockRows) * F);
  std::vector<int32_t> categories(static_cast<size_t>(kBlockRows) * F);
  double acc[kBlockRows];
  for (int64_t start = begin; start < end; start += kBlockRows) {
    const int64_t count = std::min(end, start + kBlockRows) - start;
    for (int64_t k = 0; k < count * F; ++k) {
      rows[k] = zeroed(X[start * F + k]);
      categories[k] = category_of(rows[k]);
    }
    std::fill(acc, acc + count, 0.0);
    for (const Tree& tree : forest.trees) {
      if (tree.has_categorical)
        tree_values<true>(tree, rows.data(), categories.data(), count, F, acc);
      else
        tree_values<false>(tree, rows.data(), categories.data(), count, F, acc);
    }
    for (int64_t r = 0; r < count; ++r)
      out[start + r] = transformed(transform, sigmoid, acc[r]);
  }
}

// ---------------------------------------------------------------- contributions

// LightGBM's ExtendPath / UnwoundPathSum on one leaf's merged path (element 0 is the bias).
struct PathElement {
  double zero;
  double one;
  double weight;
};

void extend(PathElement* path, int depth, double zero, double one) {
  path[depth].zero = zero;
  path[depth].one = one;
  path[depth].weight = depth == 0 ? 1.0 : 0.0;
  for (int i = depth - 1; i >= 0; --i) {
    path[i + 1].weight += one * path[i].weight * (i + 1) / static_cast<double>(depth + 1);
    path[i].weight = zero * path[i].weight * (depth - i) / static_cast<double>(depth + 1);
  }
}

double unwound_sum(const PathElement* path, int depth, int index) {
  const double one = path[index].one;
  const double zero = path[index].zero;
  double next_one_portion = path[depth].weight;
  double total = 0.0;
  for (int i = depth - 1; i >= 0; --i) {
    if (one != 0) {
      const double tmp = next_one_portion * (depth + 1) / static_cast<double>((i + 1) * one);
      total += tmp;
      next_one_portion =
          path[i].weight - tmp * zero * ((depth - i) / static_cast<double>(depth + 1));
    } else if (zero != 0) {
      total += (path[i].weight / zero) / ((depth - i) / static_cast<double>(depth + 1));
    }
  }
  return total;
}

void leaf_by_recursion(const Tree& tree, const LeafShap& leaf, uint64_t present, double* phi) {
  PathElement path[kMaxPathFeatures + 1];
  const int d = leaf.depth;
  extend(path, 0, 1.0, 1.0);
  for (int k = 0; k < d; ++k)
    extend(path, k + 1, tree.zero[leaf.elem_begin + k], ((present >> k) & 1) ? 1.0 : 0.0);
  for (int k = 0; k < d; ++k) {
    const double w = unwound_sum(path, d, k + 1);
    const PathElement& el = path[k + 1];
    phi[tree.feature[leaf.elem_begin + k]] += w * (el.one - el.zero) * leaf.value;
  }
}

inline void leaf_contributions(const Tree& tree, const LeafShap& leaf, uint64_t fail,
                               double* phi) {
  const int d = leaf.depth;
  const uint64_t full = d == 64 ? ~uint64_t(0) : ((uint64_t(1) << d) - 1);
  const uint64_t present = full & ~fail;
  if (leaf.table_begin < 0) {
    leaf_by_recursion(tree, leaf, present, phi);
    return;
  }
  const double* table = tree.table.data() + leaf.table_begin;
  const int32_t* feature = tree.feature.data() + leaf.elem_begin;
  const double* coef = tree.coef_pair.data() + 2 * static_cast<int64_t>(leaf.elem_begin);
  for (int k = 0; k < d; ++k) {
    const uint64_t bit = uint64_t(1) << k;
    phi[feature[k]] += coef[2 * k + ((present >> k) & 1)] * table[present & ~bit];
  }
}

// One row through one tree: the pass/fail mask of every leaf's path (one visit per node in
// preorder, a stack of the right children's masks), then each leaf's table lookups.
// Where a split sends the row: computed from the row, or read from split_decisions' bits.
template <bool HasCategorical>
struct FromRow {
  const double* row;
  const int32_t* codes;
  const uint32_t* cats;
  inline uint64_t operator()(const Node& node, int32_t) const {
    const int32_t f = node.feature;
    return static_cast<uint64_t>(decide_right<HasCategorical>(node, row[f], codes[f], cats));
  }
};

struct FromBits {
  const uint64_t* right;
  int64_t first;  // the tree's split 0, forest-wide
  inline uint64_t operator()(const Node&, int32_t index) const {
    const int64_t id = first + index;
    return (right[id >> 6] >> (id & 63)) & 1;
  }
};

template <typename Decide>
void tree_contributions(const Tree& tree, Decide decide, double* phi, uint64_t* fails,
                        uint64_t* pending) {
  int top = 0;
  uint64_t fail = 0;
  const Node* nodes = tree.nodes.data();
  const uint8_t* slot = tree.slot.data();
  const int32_t internal = tree.internal;
  for (const int32_t index : tree.preorder) {
    if (index < internal) {
      const uint64_t right = decide(nodes[index], index);
      const uint64_t bit = uint64_t(1) << slot[index];
      pending[top++] = fail | (bit & (right - 1));  // the right child's mask
      fail |= bit & (0 - right);                     // the left child's mask
    } else {
      fails[index - internal] = fail;
      if (top > 0) fail = pending[--top];
    }
  }
  const LeafShap* leaves = tree.leaves.data();
    for (int32_t j = 0; j <= internal; ++j) leaf_contributions(tree, leaves[j], fails[j], phi);
}

void contrib_rows(const Forest& forest, const double* X, int64_t begin, int64_t end,
                  double* out) {
  const int64_t F = forest.num_features;
  constexpr int64_t kRows = 1024;  // each tree's tables serve many rows while cached
  const QuickScorer& quick = forest.quick;
  size_t most_leaves = 1, deepest = 1;
  for (const Tree& tree : forest.trees) {
    most_leaves = std::max(most_leaves, tree.leaves.size());
    deepest = std::max(deepest, static_cast<size_t>(tree.depth) + 1);
  }
  const int64_t words = (quick.splits + 63) / 64;
  std::vector<uint64_t> fails(most_leaves), pending(deepest);
  std::vector<uint64_t> right(quick.usable ? static_cast<size_t>(kRows * words) : 0);
  std::vector<double> rows(static_cast<size_t>(kRows) * F);
  std::vector<int32_t> codes(static_cast<size_t>(kRows) * F);
  for (int64_t start = begin; start < end; start += kRows) {
    const int64_t count = std::min(end, start + kRows) - start;
    for (int64_t k = 0; k < count * F; ++k) {
      rows[k] = zeroed(X[start * F + k]);
      codes[k] = category_of(rows[k]);
    }
    if (quick.usable)
      for (int64_t r = 0; r < count; ++r)
        split_decisions(quick, &rows[r * F], forest.num_features, &right[r * words]);
    std::fill(out + start * (F + 1), out + (start + count) * (F + 1), 0.0);
    for (size_t t = 0; t < forest.trees.size(); ++t) {
      const Tree& tree = forest.trees[t];
      for (int64_t r = 0; r < count; ++r) {
        double* phi = out + (start + r) * (F + 1);
        phi[F] += tree.expected_value;
        if (tree.internal == 0) continue;
        if (quick.usable)
          tree_contributions(tree, FromBits{&right[r * words], quick.tree_splits[t]}, phi,
                             fails.data(), pending.data());
        else if (tree.has_categorical)
          tree_contributions(tree, FromRow<true>{&rows[r * F], &codes[r * F], tree.cats.data()},
                             phi, fails.data(), pending.data());
        else
          tree_contributions(tree, FromRow<false>{&rows[r * F], &codes[r * F], tree.cats.data()},
                             phi, fails.data(), pending.data());
      }
    }
  }
}

// Rows in chunks of `grain` handed out one at a time to `threads` threads (this one and
// threads - 1 new ones), so that a thread the shared machine slows down holds up no other.
template <typename Work>
void run_parallel(int64_t n, int threads, int64_t grain, Work work) {
  const int64_t chunks = (n + grain - 1) / grain;
  const int count = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, chunks)));
  if (count <= 1) {
    work(0, n);
    return;
  }
  std::atomic<int64_t> next{0};
  auto loop = [&] {
    for (int64_t begin = next.fetch_add(grain); begin < n; begin = next.fetch_add(grain))
      work(begin, std::min(n, begin + grain));
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < count; ++k) pool.emplace_back(loop);
  loop();
  for (auto& thread : pool) thread.join();
}

// ---------------------------------------------------------------- Python bindings

const char* kCapsule = "arscore.trees.Forest";

void free_forest(PyObject* capsule) {
  delete static_cast<Forest*>(PyCapsule_GetPointer(capsule, kCapsule));
}

struct Buffers {
  std::vector<Py_buffer> views;
  ~Buffers() {
    for (auto& view : views) PyBuffer_Release(&view);
  }
  // a C-contiguous buffer of `format` and itemsize; returns nullptr (error set) if not
  const void* get(PyObject* object, const char* what, char format, Py_ssize_t itemsize,
                  Py_ssize_t* length, bool writable = false) {
    Py_buffer view;
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(object, &view, flags) != 0) return nullptr;
    views.push_back(view);
    const char* f = view.format ? view.format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') ++f;
    bool ok = view.itemsize == itemsize && (f[0] == format || (format == 'q' && f[0] == 'l' &&
                                                               itemsize == sizeof(long)) ||
                                            (format == 'i' && f[0] == 'l' && sizeof(long) == 4) ||
                                            (format == 'I' && f[0] == 'L' && sizeof(long) == 4));
    if (!ok) {
      PyErr_Format(PyExc_TypeError, "%s: expected items of format %c and size %zd, got %s/%zd",
                   what, format, itemsize, view.format ? view.format : "B", view.itemsize);
      return nullptr;
    }
    *length = view.len / itemsize;
    return view.buf;
  }
};

PyObject* py_build(PyObject*, PyObject* args) {
  PyObject* objects[14];
  int num_features = 0, table_max = 0;
  if (!PyArg_ParseTuple(args, "(OOOOOOOOOOOOOO)ii", &objects[0], &objects[1], &objects[2],
                        &objects[3], &objects[4], &objects[5], &objects[6], &objects[7],
                        &objects[8], &objects[9], &objects[10], &objects[11], &objects[12],
                        &objects[13], &num_features, &table_max))
    return nullptr;
  Buffers buffers;
  Py_ssize_t n[14];
  const char* names[14] = {"tree_nodes",    "tree_leaves",    "tree_cat_bounds", "tree_cat_words",
                           "split_feature", "threshold",      "decision_type",   "left_child",
                           "right_child",   "internal_count", "leaf_value",      "leaf_count",
                           "cat_boundaries", "cat_threshold"};
  const char formats[14] = {'q', 'q', 'q', 'q', 'i', 'd', 'i', 'i', 'i', 'd', 'd', 'd', 'i', 'I'};
  const Py_ssize_t sizes[14] = {8, 8, 8, 8, 4, 8, 4, 4, 4, 8, 8, 8, 4, 4};
  const void* data[14];
  for (int k = 0; k < 14; ++k) {
    data[k] = buffers.get(objects[k], names[k], formats[k], sizes[k], &n[k]);
    if (!data[k]) return nullptr;
  }
  Source src{static_cast<const int64_t*>(data[0]),  static_cast<const int64_t*>(data[1]),
             static_cast<const int64_t*>(data[2]),  static_cast<const int64_t*>(data[3]),
             static_cast<const int32_t*>(data[4]),  static_cast<const double*>(data[5]),
             static_cast<const int32_t*>(data[6]),  static_cast<const int32_t*>(data[7]),
             static_cast<const int32_t*>(data[8]),  static_cast<const double*>(data[9]),
             static_cast<const double*>(data[10]), static_cast<const double*>(data[11]),
             static_cast<const int32_t*>(data[12]), static_cast<const uint32_t*>(data[13]),
             n[0] - 1};
  if (n[0] < 1 || n[1] != n[0] || n[2] != n[0] || n[3] != n[0] || n[5] != n[4] ||
      n[6] != n[4] || n[7] != n[4] || n[8] != n[4] || n[9] != n[4] || n[11] != n[10] ||
      src.tree_nodes[src.num_trees] != n[4] || src.tree_leaves[src.num_trees] != n[10] ||
      src.tree_cat_bounds[src.num_trees] != n[12] || src.tree_cat_words[src.num_trees] != n[13]) {
    PyErr_SetString(PyExc_ValueError, "inconsistent forest arrays");
    return nullptr;
  }
  auto* forest = new Forest();
  forest->num_features = num_features;
  forest->trees.resize(src.num_trees);
  try {
    for (int64_t t = 0; t < src.num_trees; ++t) {
      build_tree(src, t, table_max, forest->trees[t]);
      for (const Node& node : forest->trees[t].nodes)
        if (node.feature < 0 || node.feature >= num_features)
          throw std::runtime_error("a split on a feature outside the model's features");
      for (int32_t i = 0; i < forest->trees[t].internal; ++i) {
        const Node& node = forest->trees[t].nodes[i];
        const auto size = static_cast<int32_t>(forest->trees[t].nodes.size());
        if (node.child[0] < 0 || node.child[0] >= size || node.child[1] < 0 || node.child[1] >= size)
          throw std::runtime_error("a child outside the tree");
      }
    }
  } catch (const std::exception& error) {
    delete forest;
    PyErr_Format(PyExc_ValueError, "tree %s", error.what());
    return nullptr;
  }
  build_quickscorer(*forest);
  return PyCapsule_New(forest, kCapsule, free_forest);
}

Forest* forest_of(PyObject* capsule) {
  return static_cast<Forest*>(PyCapsule_GetPointer(capsule, kCapsule));
}

PyObject* py_predict(PyObject*, PyObject* args) {
  PyObject *capsule, *x_object, *out_object;
  int threads = 1, transform = kRaw;
  double sigmoid = 1.0;
  if (!PyArg_ParseTuple(args, "OOOiid", &capsule, &x_object, &out_object, &threads, &transform,
                        &sigmoid))
    return nullptr;
  Forest* forest = forest_of(capsule);
  if (!forest) return nullptr;
  Buffers buffers;
  Py_ssize_t nx, nout;
  auto* X = static_cast<const double*>(buffers.get(x_object, "X", 'd', 8, &nx));
  if (!X) return nullptr;
  auto* out = const_cast<double*>(static_cast<const double*>(buffers.get(out_object, "out", 'd', 8, &nout, true)));
  if (!out) return nullptr;
  const int64_t F = forest->num_features;
  if (F <= 0 || nx % F != 0 || nout != nx / F) {
    PyErr_SetString(PyExc_ValueError, "X must be rows x num_features and out one per row");
    return nullptr;
  }
  const int64_t rows = nx / F;
  Py_BEGIN_ALLOW_THREADS run_parallel(rows, threads, 1024, [&](int64_t b, int64_t e) {
    predict_rows(*forest, X, b, e, transform, sigmoid, out);
  });
  Py_END_ALLOW_THREADS Py_RETURN_NONE;
}

// Rows per chunk handed to a thread: large blocks run faster (a tree's tables are reused while
// cached: 1,024 rows ran 1.6 to 1.9 times as fast as 32), a few chunks per thread keep a
// thread the machine slows down from holding up the others.
int64_t contribution_grain(int64_t rows, int threads) {
  const int64_t per_thread = (rows + 2 * threads - 1) / (2 * std::max(1, threads));
  return std::max<int64_t>(128, std::min<int64_t>(1024, per_thread));
}

PyObject* py_contributions(PyObject*, PyObject* args) {
  PyObject *capsule, *x_object, *out_object;
  int threads = 1;
  if (!PyArg_ParseTuple(args, "OOOi", &capsule, &x_object, &out_object, &threads)) return nullptr;
  Forest* forest = forest_of(capsule);
  if (!forest) return nullptr;
  Buffers buffers;
  Py_ssize_t nx, nout;
  auto* X = static_cast<const double*>(buffers.get(x_object, "X", 'd', 8, &nx));
  if (!X) return nullptr;
  auto* out = const_cast<double*>(static_cast<const double*>(buffers.get(out_object, "out", 'd', 8, &nout, true)));
  if (!out) return nullptr;
  const int64_t F = forest->num_features;
  if (F <= 0 || nx % F != 0 || nout != (nx / F) * (F + 1)) {
    PyErr_SetString(PyExc_ValueError, "X must be rows x num_features, out rows x (num_features+1)");
    return nullptr;
  }
  const int64_t rows = nx / F;
  Py_BEGIN_ALLOW_THREADS run_parallel(rows, threads, contribution_grain(rows, threads), [&](int64_t b, int64_t e) {
    contrib_rows(*forest, X, b, e, out);
  });
  Py_END_ALLOW_THREADS Py_RETURN_NONE;
}

PyObject* py_describe(PyObject*, PyObject* args) {
  PyObject* capsule;
  if (!PyArg_ParseTuple(args, "O", &capsule)) return nullptr;
  Forest* forest = forest_of(capsule);
  if (!forest) return nullptr;
  long long tabulated = 0, recursive = 0, table_bytes = 0;
  int max_depth = 0;
  for (const Tree& tree : forest->trees) {
    max_depth = std::max(max_depth, tree.depth);
    table_bytes += static_cast<long long>(tree.table.size() * sizeof(double));
    for (const LeafShap& leaf : tree.leaves) (leaf.table_begin >= 0 ? tabulated : recursive)++;
  }
  return Py_BuildValue("{s:n,s:i,s:L,s:L,s:L}", "trees",
                       static_cast<Py_ssize_t>(forest->trees.size()), "max_depth", max_depth,
                       "tabulated_leaves", tabulated, "recursive_leaves", recursive,
                       "table_bytes", table_bytes);
}

PyMethodDef kMethods[] = {
    {"build", py_build, METH_VARARGS, "A Forest capsule from the flat arrays of a model dump."},
    {"predict", py_predict, METH_VARARGS, "predict(forest, X, out, threads, transform, sigmoid)"},
    {"contributions", py_contributions, METH_VARARGS,
     "contributions(forest, X, out, threads): TreeSHAP, last column the expected value"},
    {"describe", py_describe, METH_VARARGS, "Counts of a built forest (trees, leaves, bytes)."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT, "_kernel",
                       "Compiled LightGBM predictions and TreeSHAP (see _kernel.cpp).", -1,
                       kMethods};

}  // namespace

PyMODINIT_FUNC PyInit__kernel(void) { return PyModule_Create(&kModule); }

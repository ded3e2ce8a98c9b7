// IR text: the printer and the parser that reads its output back, plus the verifier. One op per line
//   %name = op(%a, %b, @weight) {key = value, ...} : f32[T, 256]
// so passes' tests can match lines and tools can count ops. print(parse(print(m))) == print(m) for every
// module; parse errors name the source, the line and what was expected.
#include "ir/error.h"
#include "ir/ir.h"

#include <cctype>
#include <charconv>
#include <set>
#include <unordered_map>
#include <utility>

namespace bitnet::ir {
namespace {

std::string attr_to_string(const Attr& a) {
  if (auto* i = std::get_if<int64_t>(&a)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&a)) return fmt::format("{}", *d);
  std::string out = "\"";
  for (char c : std::get<std::string>(a)) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'; }

}  // namespace

std::string print(const Module& m) {
  std::string out;
  for (auto& w : m.weights) {
    out += fmt::format("weight @{} : {}", w.name, type_to_string(w.type));
    for (size_t i = 0; i < w.concat_of.size(); ++i) out += fmt::format("{}@{}", i ? ", " : " = concat(", m.weights[w.concat_of[i]].name);
    out += w.concat_of.empty() ? "\n" : ")\n";
  }
  if (!m.weights.empty()) out += "\n";
  out += fmt::format("func @{}(", m.func_name);
  for (size_t i = 0; i < m.inputs.size(); ++i) {
    const Value& v = m.values[m.inputs[i]];
    out += fmt::format("{}%{}: {}", i ? ", " : "", v.name, type_to_string(v.type));
  }
  out += fmt::format(") -> {} {{\n", m.output >= 0 ? type_to_string(m.values[m.output].type) : "?");
  for (auto& n : m.nodes) {
    out += fmt::format("  %{}", m.values[n.result].name);
    for (int r : n.extra_results) out += fmt::format(", %{}", m.values[r].name);
    out += fmt::format(" = {}(", op_info(n.op).text);
    bool first = true;
    for (int v : n.operands) out += fmt::format("{}%{}", std::exchange(first, false) ? "" : ", ", m.values[v].name);
    for (int w : n.weights) out += fmt::format("{}@{}", std::exchange(first, false) ? "" : ", ", m.weights[w].name);
    out += ")";
    if (!n.attrs.empty()) {
      out += " {";
      first = true;
      for (auto& [key, value] : n.attrs) out += fmt::format("{}{} = {}", std::exchange(first, false) ? "" : ", ", key, attr_to_string(value));
      out += "}";
    }
    out += fmt::format(" : {}", type_to_string(m.values[n.result].type));
    for (int r : n.extra_results) out += fmt::format(", {}", type_to_string(m.values[r].type));
    out += "\n";
  }
  if (m.output >= 0) out += fmt::format("  return %{}\n", m.values[m.output].name);
  out += "}\n";
  return out;
}

namespace {

class Parser {
 public:
  Parser(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  Module run() {
    skip_space();
    while (peek_word() == "weight") parse_weight();
    expect_word("func");
    expect('@');
    m_.func_name = name();
    expect('(');
    skip_space();
    if (!try_consume(')')) {
      do {
        expect('%');
        std::string n = name();
        expect(':');
        Type t = type();
        define(n, m_.add_input(n, t));
      } while (try_consume(','));
      expect(')');
    }
    expect('-');
    expect('>');
    Type result = type();
    expect('{');
    while (true) {
      skip_space();
      if (peek_word() == "return") {
        expect_word("return");
        expect('%');
        m_.output = use(name());
        break;
      }
      parse_node();
    }
    expect('}');
    skip_space();
    if (pos_ != text_.size()) error("unexpected text after the function");
    if (!(m_.values[m_.output].type == result)) {
      error(fmt::format("return type {} does not match the declared {}", type_to_string(m_.values[m_.output].type), type_to_string(result)));
    }
    return std::move(m_);
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    size_t line = 1;
    for (size_t i = 0; i < pos_ && i < text_.size(); ++i) line += text_[i] == '\n';
    fail("{}:{}: {}", source_, line, what);
  }
  void skip_space() {
    while (pos_ < text_.size()) {
      if (std::isspace(static_cast<unsigned char>(text_[pos_]))) {
        ++pos_;
      } else if (text_.substr(pos_, 2) == "//") {  // comments, for hand-written test files
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }
  bool try_consume(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!try_consume(c)) error(fmt::format("expected '{}'", c));
  }
  std::string_view peek_word() {
    skip_space();
    size_t end = pos_;
    while (end < text_.size() && std::isalpha(static_cast<unsigned char>(text_[end]))) ++end;
    return text_.substr(pos_, end - pos_);
  }
  void expect_word(std::string_view w) {
    if (peek_word() != w) error(fmt::format("expected '{}'", w));
    pos_ += w.size();
  }
  std::string name() {
    size_t start = pos_;
    while (pos_ < text_.size() && is_name_char(text_[pos_])) ++pos_;
    if (start == pos_) error("expected a name");
    return std::string(text_.substr(start, pos_ - start));
  }
  int64_t integer() {
    skip_space();
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(text_.data() + pos_, text_.data() + text_.size(), v);
    if (ec != std::errc()) error("expected an integer");
    pos_ = static_cast<size_t>(ptr - text_.data());
    return v;
  }
  double number() {
    skip_space();
    size_t end = pos_;
    while (end < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '.' || text_[end] == '-' || text_[end] == '+')) ++end;
    std::string token(text_.substr(pos_, end - pos_));
    char* stop = nullptr;
    double v = std::strtod(token.c_str(), &stop);
    if (token.empty() || *stop != '\0') error(fmt::format("expected a number, got '{}'", token));
    pos_ = end;
    return v;
  }
  std::string quoted() {
    expect('"');
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != '"') {
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
      out += text_[pos_++];
    }
    if (pos_ >= text_.size()) error("unterminated string");
    ++pos_;
    return out;
  }
  Type type() {
    skip_space();
    size_t start = pos_;
    while (pos_ < text_.size() && std::isalnum(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    auto dtype = dtype_from_name(text_.substr(start, pos_ - start));
    if (!dtype) error(fmt::format("unknown dtype '{}'", text_.substr(start, pos_ - start)));
    Type t{*dtype, {}};
    expect('[');
    skip_space();
    if (!try_consume(']')) {
      do {
        skip_space();
        if (pos_ < text_.size() && text_[pos_] == 'T') {
          ++pos_;
          t.dims.push_back(kSymbolicT);
        } else {
          int64_t d = integer();
          if (d < 1) error(fmt::format("dimension {} must be positive", d));
          t.dims.push_back(d);
        }
      } while (try_consume(','));
      expect(']');
    }
    return t;
  }
  void parse_weight() {
    expect_word("weight");
    expect('@');
    std::string n = name();
    expect(':');
    Type t = type();
    if (m_.find_weight(n)) error(fmt::format("weight @{} is declared twice", n));
    int id = m_.add_weight(n, t);
    if (try_consume('=')) {
      expect_word("concat");
      expect('(');
      do {
        expect('@');
        std::string source = name();
        auto s = m_.find_weight(source);
        if (!s || *s == id) error(fmt::format("concat: @{} is not a weight declared before @{}", source, n));
        m_.weights[id].concat_of.push_back(*s);
      } while (try_consume(','));
      expect(')');
      try {
        verify_concat(m_, m_.weights[id]);
      } catch (const Error& e) {
        error(e.what());
      }
    }
  }
  void define(const std::string& n, int id) {
    if (!names_.emplace(n, id).second) error(fmt::format("value %{} is defined twice", n));
  }
  int use(const std::string& n) {
    auto it = names_.find(n);
    if (it == names_.end()) error(fmt::format("value %{} is used before it is defined", n));
    return it->second;
  }
  void parse_node() {
    skip_space();
    const size_t node_start = pos_;  // semantic errors point at the node's line, wherever the cursor is
    expect('%');
    std::vector<std::string> results{name()};
    while (try_consume(',')) {
      expect('%');
      results.push_back(name());
    }
    expect('=');
    skip_space();
    size_t start = pos_;
    while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) ++pos_;
    std::string op_text(text_.substr(start, pos_ - start));
    auto op = op_from_text(op_text);
    if (!op) error(fmt::format("unknown op '{}'", op_text));
    Node node{*op, {}, {}, {}, -1};
    expect('(');
    if (!try_consume(')')) {
      do {
        skip_space();
        if (try_consume('%')) {
          if (!node.weights.empty()) error("value operands must come before weight operands");
          node.operands.push_back(use(name()));
        } else if (try_consume('@')) {
          std::string w = name();
          auto id = m_.find_weight(w);
          if (!id) error(fmt::format("unknown weight @{}", w));
          node.weights.push_back(*id);
        } else {
          error("expected an operand (%value or @weight)");
        }
      } while (try_consume(','));
      expect(')');
    }
    if (try_consume('{')) {
      std::string_view spec = op_info(*op).attributes;
      do {
        skip_space();
        std::string key = name();
        expect('=');
        size_t at = spec.find(key + ":");
        if (at == std::string_view::npos) error(fmt::format("op '{}' has no attribute '{}'", op_text, key));
        char kind = spec[at + key.size() + 1];
        skip_space();
        if (kind == 'i') node.attrs[key] = integer();
        else if (kind == 'f') node.attrs[key] = number();
        else node.attrs[key] = quoted();
      } while (try_consume(','));
      expect('}');
    }
    expect(':');
    std::vector<Type> declared{type()};
    while (try_consume(',')) declared.push_back(type());
    pos_ = std::min(pos_, text_.find('\n', node_start));
    if (declared.size() != results.size()) error(fmt::format("{} results but {} types", results.size(), declared.size()));
    if (static_cast<int>(results.size()) != op_info(*op).n_results) {
      error(fmt::format("op '{}' produces {} results, not {}", op_text, op_info(*op).n_results, results.size()));
    }
    node.extra_results.assign(results.size() - 1, 0);  // placeholders until the values exist
    std::vector<Type> inferred;
    try {
      inferred = infer_types(m_, node);
    } catch (const Error& e) {
      error(e.what());
    }
    for (size_t i = 0; i < results.size(); ++i) {
      if (!(inferred[i] == declared[i])) {
        error(fmt::format("%{}: declared type {} but op '{}' produces {}", results[i], type_to_string(declared[i]), op_text,
                          type_to_string(inferred[i])));
      }
      m_.values.push_back({results[i], declared[i], static_cast<int>(m_.nodes.size())});
      int id = static_cast<int>(m_.values.size() - 1);
      define(results[i], id);
      if (i == 0) node.result = id;
      else node.extra_results[i - 1] = id;
    }
    m_.nodes.push_back(std::move(node));
  }

  std::string_view text_;
  const std::string& source_;
  size_t pos_ = 0;
  Module m_;
  std::unordered_map<std::string, int> names_;
};

}  // namespace

void verify_concat(const Module& m, const Weight& w) {
  int64_t rows = 0;
  for (int s : w.concat_of) {
    const Type& t = m.weights.at(s).type;
    if (t.dtype != w.type.dtype || t.dims.size() != 2 || w.type.dims.size() != 2 || t.dims[1] != w.type.dims[1]) {
      fail("weight @{}: concat source @{} has type {}, expected {}[N, {}]", w.name, m.weights[s].name, type_to_string(t),
           dtype_name(w.type.dtype), w.type.dims.size() == 2 ? w.type.dims[1] : 0);
    }
    rows += t.dims[0];
  }
  if (!w.concat_of.empty() && rows != w.type.dims[0]) fail("weight @{}: concat sources have {} rows, the type says {}", w.name, rows, w.type.dims[0]);
}

Module parse(std::string_view text, const std::string& source) {
  Module m = Parser(text, source).run();
  verify(m);
  return m;
}

void verify(const Module& m) {
  auto line = [&](const Node& n) {
    std::string s = fmt::format("%{} = {}(...)", m.values[n.result].name, op_info(n.op).text);
    return s;
  };
  std::set<std::string> names, weight_names;
  for (size_t i = 0; i < m.weights.size(); ++i) {
    const Weight& w = m.weights[i];
    for (int s : w.concat_of) {
      if (s < 0 || s >= static_cast<int>(i)) fail("verify: weight @{}: concat sources must be declared before it", w.name);
    }
    verify_concat(m, w);
    if (!weight_names.insert(w.name).second) fail("verify: weight @{} is declared twice", w.name);
    if ((w.type.dtype == DType::T2 || w.type.dtype == DType::I8) && w.type.dims.size() != 2) {
      fail("verify: weight @{}: {} weights must be matrices", w.name, dtype_name(w.type.dtype));
    }
    for (auto d : w.type.dims) {
      if (d < 1) fail("verify: weight @{}: dimensions must be positive", w.name);
    }
  }
  for (size_t i = 0; i < m.values.size(); ++i) {
    if (!names.insert(m.values[i].name).second) fail("verify: value %{} is defined twice", m.values[i].name);
  }
  for (int in : m.inputs) {
    if (m.values.at(in).producer != -1) fail("verify: input %{} has a producer", m.values[in].name);
  }
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    const Node& n = m.nodes[i];
    bool owned = true;
    n.for_each_result([&](int r) { owned = owned && r >= 0 && r < static_cast<int>(m.values.size()) && m.values[r].producer == static_cast<int>(i); });
    if (!owned) fail("verify: {}: a result is not owned by its node", line(n));
    for (int v : n.operands) {
      if (v < 0 || v >= static_cast<int>(m.values.size())) fail("verify: {}: operand out of range", line(n));
      if (m.values[v].producer >= static_cast<int>(i)) {
        fail("verify: {}: operand %{} is used before it is computed (a cycle or a misordered node)", line(n), m.values[v].name);
      }
    }
    std::vector<Type> types;
    try {
      types = infer_types(m, n);
    } catch (const Error& e) {
      fail("verify: {}: {}", line(n), e.what());
    }
    size_t k = 0;
    n.for_each_result([&](int r) {
      const Type& t = types.at(k++);
      if (!(t == m.values[r].type)) {
        fail("verify: {}: result %{} has type {} but the op produces {}", line(n), m.values[r].name, type_to_string(m.values[r].type), type_to_string(t));
      }
    });
  }
  if (m.output < 0 || m.output >= static_cast<int>(m.values.size())) fail("verify: the function returns no value");
}

}  // namespace bitnet::ir

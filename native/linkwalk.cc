// The regular files with more than one hard link under a few trees, for the
// launch's check of latchgate's own installation (src/sandbox/hard-links.ts).
// The trees hold some 12,000 files; a walk in JS pays a Stats object and a
// full path lookup per file, this one an fstatat(2) relative to the open
// directory, on a thread of libuv's pool while the launch goes on planning.
// Symbolic links are never followed (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW).
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace lg {
namespace {

struct Linked {
  std::string path;
  uint64_t dev;
  uint64_t ino;
  uint64_t nlink;
};

// A directory the launcher cannot open or list holds nothing it runs; any
// other failure (EMFILE, EIO...) ends the walk: the check must not pass on
// a tree it did not see.
bool Skippable(int err) { return err == EACCES || err == ENOENT || err == ENOTDIR || err == ELOOP; }

struct Walk {
  std::vector<Linked> out;
  int err = 0;
  std::string where;

  void Note(const std::string& path, const struct stat& st) {
    if (S_ISREG(st.st_mode) && st.st_nlink > 1) out.push_back({path, st.st_dev, st.st_ino, st.st_nlink});
  }

  void Fail(int e, const std::string& path) {
    if (err == 0) err = e, where = path;
  }

  // Takes fd (a directory) and closes it.
  void Dir(int fd, const std::string& path) {
    DIR* d = fdopendir(fd);
    if (d == nullptr) {
      int e = errno;
      close(fd);
      if (!Skippable(e)) Fail(e, path);
      return;
    }
    while (err == 0) {
      errno = 0;
      struct dirent* e = readdir(d);
      if (e == nullptr) {
        if (errno != 0 && !Skippable(errno)) Fail(errno, path);
        break;
      }
      const char* name = e->d_name;
      if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
      unsigned char type = e->d_type;
      std::string child = path + "/" + name;
      struct stat st{};
      if (type == DT_UNKNOWN || type == DT_REG) {
        if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
          if (!Skippable(errno)) Fail(errno, child);
          continue;
        }
        if (S_ISDIR(st.st_mode)) type = DT_DIR;
        else Note(child, st);
      }
      if (type == DT_DIR) {
        int sub = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
          if (!Skippable(errno)) Fail(errno, child);
          continue;
        }
        Dir(sub, child);
      }
    }
    closedir(d);
  }

  void Root(const std::string& path) {
    struct stat st{};
    if (lstat(path.c_str(), &st) != 0) {
      if (!Skippable(errno)) Fail(errno, path);
      return;
    }
    if (!S_ISDIR(st.st_mode)) return Note(path, st);
    int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (!Skippable(errno)) Fail(errno, path);
      return;
    }
    Dir(fd, path);
  }
};

// The walk runs on a thread of libuv's pool, so the launch goes on
// planning meanwhile; the promise settles on the JS thread.
class LinkedFilesWorker : public Napi::AsyncWorker {
 public:
  LinkedFilesWorker(Napi::Env env, std::vector<std::string> roots)
      : Napi::AsyncWorker(env, "latchgate:linkedFiles"), deferred_(Napi::Promise::Deferred::New(env)), roots_(std::move(roots)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    for (const std::string& r : roots_) {
      if (walk_.err != 0) break;
      walk_.Root(r);
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (walk_.err != 0) {
      Napi::Error e = Napi::Error::New(env, "walking \"" + walk_.where + "\": " + strerror(walk_.err) + " (errno " + std::to_string(walk_.err) + ")");
      e.Set("step", Napi::String::New(env, "walk"));
      e.Set("errno", Napi::Number::New(env, walk_.err));
      deferred_.Reject(e.Value());
      return;
    }
    Napi::Array out = Napi::Array::New(env, walk_.out.size());
    for (size_t i = 0; i < walk_.out.size(); i++) {
      const Linked& l = walk_.out[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("path", Napi::String::New(env, l.path));
      o.Set("dev", Napi::BigInt::New(env, l.dev));
      o.Set("ino", Napi::BigInt::New(env, l.ino));
      o.Set("nlink", Napi::Number::New(env, static_cast<double>(l.nlink)));
      out.Set(static_cast<uint32_t>(i), o);
    }
    deferred_.Resolve(out);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<std::string> roots_;
  Walk walk_;
};

// linkedFiles(roots: string[]) -> Promise<[{ path, dev: bigint, ino: bigint, nlink }]>
Napi::Value LinkedFiles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "linkedFiles(roots): an array of absolute paths";
  if (info.Length() < 1 || !info[0].IsArray()) {
    Napi::TypeError::New(env, usage).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<std::string> roots;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsString()) {
      Napi::TypeError::New(env, usage).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    roots.push_back(v.As<Napi::String>().Utf8Value());
  }
  auto* worker = new LinkedFilesWorker(env, std::move(roots));
  Napi::Promise p = worker->Promise();
  worker->Queue();  // deletes itself once settled
  return p;
}

}  // namespace

void InitLinkwalk(Napi::Env env, Napi::Object exports) { exports.Set("linkedFiles", Napi::Function::New(env, LinkedFiles)); }

}  // namespace lg

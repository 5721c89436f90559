// The launcher's side of idmapped mounts (idmap.cc): used by spawn.cc before
// clone() and by fsident.cc's view of the workspace.
#pragma once
#include <napi.h>

#include <string>

namespace lg {

// An fd of a user namespace with these maps (kept for the process's life), or
// -errno with *step naming the failed call.
int idmap_userns(const std::string& uid_map, const std::string& gid_map, const char** step);
// A detached recursive copy of path, idmapped through userns_fd, nosuid and
// nodev: an fd for move_mount(2), or -errno with *step naming the failed call.
// path must hold no symlink (else -ELOOP): a real path, as the plan made it.
int idmapped_tree(const char* path, int userns_fd, const char** step);
void InitIdmap(Napi::Env env, Napi::Object exports);

}  // namespace lg

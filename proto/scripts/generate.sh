#!/usr/bin/env bash
# Regenerates the TypeScript under src/gen from the .proto files in this
# package. Works offline: protoc comes from Debian's protobuf-compiler and the
# ts-proto plugin from node_modules.
#
#   scripts/generate.sh [OUT_DIR]      (default: <package>/src/gen)
#
# OUT_DIR is replaced as a whole, so files of removed .proto sources go too.
# Overrides: PROTOC, PROTOC_INCLUDE (dir holding google/protobuf/*.proto),
# TS_PROTO_PLUGIN.
set -euo pipefail

package_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out_dir=${1:-$package_dir/src/gen}

protoc_bin=${PROTOC:-$(command -v protoc || true)}
if [[ -z $protoc_bin ]]; then
  echo "generate.sh: protoc not found; install Debian's protobuf-compiler" >&2
  exit 127
fi

find_well_known_include() {
  local candidate
  for candidate in "${PROTOC_INCLUDE:-}" "$(dirname "$protoc_bin")/../include" /usr/include /usr/local/include; do
    if [[ -n $candidate && -f $candidate/google/protobuf/timestamp.proto ]]; then
      (cd "$candidate" && pwd)
      return
    fi
  done
  echo "generate.sh: google/protobuf/*.proto not found; set PROTOC_INCLUDE" >&2
  exit 1
}

find_plugin() {
  if [[ -n ${TS_PROTO_PLUGIN:-} ]]; then
    echo "$TS_PROTO_PLUGIN"
    return
  fi
  # npm workspaces hoist the plugin to the repository root, but a standalone
  # install keeps it next to the package.
  local dir=$package_dir
  while [[ $dir != / ]]; do
    if [[ -x $dir/node_modules/.bin/protoc-gen-ts_proto ]]; then
      echo "$dir/node_modules/.bin/protoc-gen-ts_proto"
      return
    fi
    dir=$(dirname "$dir")
  done
  echo "generate.sh: protoc-gen-ts_proto not found; run npm install (devDependency ts-proto)" >&2
  exit 1
}

well_known_include=$(find_well_known_include)
plugin=$(find_plugin)

# Every .proto that is ours; the sorted list keeps protoc's input order, and
# so its output, stable across machines.
mapfile -t proto_files < <(
  cd "$package_dir" &&
    find berth containerd google grpc ttrpc -name '*.proto' 2>/dev/null | LC_ALL=C sort
)

ts_proto_options=(
  outputServices=grpc-js
  # fullName + method names + codecs, which the ttrpc layer needs.
  outputServices=generic-definitions
  # A static $type on each codec names its full proto type, for Any packing.
  outputTypeAnnotations=static-only
  esModuleInterop=true
  env=node
  forceLong=number
  # ...except fields marked [jstype = JS_STRING], which may exceed 2^53.
  useJsTypeOverride=true
  useDate=true
  useOptionals=messages
  # Keeps the output identical whichever protoc/ts-proto patch level ran.
  annotateFilesWithVersion=false
)
joined_options=$(IFS=,; echo "${ts_proto_options[*]}")

staging_dir=$(mktemp -d)
trap 'rm -rf "$staging_dir"' EXIT

(
  cd "$package_dir"
  "$protoc_bin" \
    --plugin=protoc-gen-ts_proto="$plugin" \
    --ts_proto_out="$staging_dir" \
    --ts_proto_opt="$joined_options" \
    -I . \
    -I "$well_known_include" \
    "${proto_files[@]}"
)

rm -rf "$out_dir"
mkdir -p "$out_dir"
cp -R "$staging_dir"/. "$out_dir"/
echo "generated $(find "$out_dir" -name '*.ts' | wc -l) files into $out_dir"

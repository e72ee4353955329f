#!/usr/bin/env bash
# download-datasets.sh DATASET SIZE DEST
#
# Downloads a public ANN data set in big-ann-benchmarks format into DEST:
#   DEST/base.{u8bin,i8bin,fbin}  (cropped to SIZE vectors)
#   DEST/query.*                  (the public queries)
#   DEST/gt100.bin                (ground truth for that size)
#
#   DATASET: bigann | deep | msspacev | text2image | msturing | sift1m | gist1m
#   SIZE:    1M | 10M | 100M | 1B   (sift1m and gist1m: 1M only)
#
# Base files are fetched with an HTTP range request for just the first SIZE
# vectors (how big-ann-benchmarks makes its 10M/100M subsets) and the header
# is rewritten to the new count. Downloads resume where they stopped (curl
# -C -). Neither big-ann-benchmarks nor TEXMEX publishes checksums, so files
# are checked by size against their headers (spann-data info). Where no
# ground truth is published for a size (the 1M subsets of most sets, and
# SIFT1M/GIST1M, whose TEXMEX ground truth has ids but no distances), it is
# computed with spann-search groundtruth. Needs curl; not run by CI.
set -euo pipefail

if [ $# -ne 3 ]; then
	sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi
ds=$1 size=$2 dest=$3
cd "$(dirname "$0")/.."
root=$(pwd)
mkdir -p "$dest" bin
go build -o bin/ ./cmd/...
cd "$dest"

case $size in
1M) n=1000000 ;; 10M) n=10000000 ;; 100M) n=100000000 ;; 1B) n=1000000000 ;;
*) echo "unknown size $size (want 1M, 10M, 100M or 1B)" >&2; exit 2 ;;
esac

fetch() { # fetch URL FILE [BYTES]: resumable, optionally only the first BYTES
	local url=$1 file=$2 bytes=${3:-}
	if [ -n "$bytes" ] && [ -f "$file" ] && [ "$(stat -c %s "$file")" -ge "$bytes" ]; then
		return
	fi
	echo "fetching $url -> $file" >&2
	if [ -n "$bytes" ]; then
		# Resume by asking for the missing byte range and appending it.
		local have=0
		[ -f "$file" ] && have=$(stat -c %s "$file")
		curl -fL --retry 5 -r "$have-$((bytes - 1))" "$url" >>"$file"
	else
		curl -fL --retry 5 -C - -o "$file" "$url"
	fi
}

set_count() { # set_count FILE N: rewrite the uint32 row count of a vector file
	printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($2 & 255)) $((($2 >> 8) & 255)) $((($2 >> 16) & 255)) $((($2 >> 24) & 255)))" |
		dd of="$1" bs=1 seek=0 count=4 conv=notrunc status=none
}

fbai=https://dl.fbaipublicfiles.com/billion-scale-ann-benchmarks
yandex=https://storage.yandexcloud.net/yandex-research/ann-datasets
comp21=https://comp21storage.z5.web.core.windows.net/comp21
gt_url=""
case $ds in
bigann)
	ext=u8bin dim=128 elem=1 base=$fbai/bigann/base.1B.u8bin query=$fbai/bigann/query.public.10K.u8bin
	case $size in 10M) gt_url=$fbai/GT_10M/bigann-10M ;; 100M) gt_url=$fbai/GT_100M/bigann-100M ;; 1B) gt_url=$fbai/bigann/GT.public.1B.ibin ;; esac ;;
deep)
	ext=fbin dim=96 elem=4 base=$yandex/DEEP/base.1B.fbin query=$yandex/DEEP/query.public.10K.fbin
	case $size in 10M) gt_url=$fbai/GT_10M/deep-10M ;; 100M) gt_url=$fbai/GT_100M/deep-100M ;; 1B) gt_url=$yandex/deep_new_groundtruth.public.10K.bin ;; esac ;;
msspacev)
	ext=i8bin dim=100 elem=1 base=$comp21/spacev1b/spacev1b_base.i8bin query=$comp21/spacev1b/query.i8bin
	case $size in 1M) gt_url=$comp21/spacev1b/msspacev-gt-1M ;; 10M) gt_url=$comp21/spacev1b/msspacev-gt-10M ;; 100M) gt_url=$comp21/spacev1b/msspacev-gt-100M ;; 1B) gt_url=$comp21/spacev1b/public_query_gt100.bin ;; esac ;;
text2image)
	# Inner-product data: use --metric ip when building and searching.
	ext=fbin dim=200 elem=4 base=$yandex/T2I/base.1B.fbin query=$yandex/T2I/query.public.100K.fbin
	case $size in 10M) gt_url=$fbai/GT_10M/text2image-10M ;; 100M) gt_url=$fbai/GT_100M/text2image-100M ;; 1B) gt_url=$yandex/t2i_new_groundtruth.public.100K.bin ;; esac ;;
msturing)
	ext=fbin dim=100 elem=4 base=$comp21/MSFT-TURING-ANNS/base1b.fbin query=$comp21/MSFT-TURING-ANNS/query100K.fbin
	case $size in 1M) gt_url=$comp21/MSFT-TURING-ANNS/msturing-gt-1M ;; 10M) gt_url=$comp21/MSFT-TURING-ANNS/msturing-gt-10M ;; 100M) gt_url=$comp21/MSFT-TURING-ANNS/msturing-gt-100M ;; 1B) gt_url=$comp21/MSFT-TURING-ANNS/query_gt100.bin ;; esac ;;
sift1m | gist1m)
	[ "$size" = 1M ] || { echo "$ds exists only as 1M" >&2; exit 2; }
	name=${ds%1m}
	fetch "ftp://ftp.irisa.fr/local/texmex/corpus/$name.tar.gz" "$name.tar.gz"
	tar -xzf "$name.tar.gz"
	"$root/bin/spann-data" convert --in "$name/${name}_base.fvecs" --out base.fbin
	"$root/bin/spann-data" convert --in "$name/${name}_query.fvecs" --out query.fbin
	[ -f gt100.bin ] || "$root/bin/spann-search" groundtruth --base base.fbin --queries query.fbin --k 100 --out gt100.bin
	"$root/bin/spann-data" info base.fbin query.fbin gt100.bin
	exit 0 ;;
*) echo "unknown data set $ds" >&2; exit 2 ;;
esac

if [ ! -f "base.$ext" ]; then
	fetch "$base" "base.$ext.part" $((8 + n * dim * elem))
	set_count "base.$ext.part" "$n"
	mv -f "base.$ext.part" "base.$ext"
fi
fetch "$query" "query.$ext"
if [ -n "$gt_url" ]; then
	fetch "$gt_url" gt100.bin
else
	"$root/bin/spann-search" groundtruth --base "base.$ext" --queries "query.$ext" --k 100 --out gt100.bin
fi
"$root/bin/spann-data" info "base.$ext" "query.$ext" gt100.bin

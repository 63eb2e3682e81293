// Per-batch index of the ids for the embedding backward: for each table row v, the positions n
// with idx[n] = v as a linked list in increasing n.
//   index[v]      (v < V): the first position with id v, valid only if < N and idx[it] = v
//   index[V + n]  (n < N, idx[n] < V): the next position after n with the same id, or END
// One invocation sweeps the ids once from the last position to the first, pushing each position
// onto the front of its row's list: O(N) work in a fixed order, no atomics, so the same index
// on every run. The heads are never cleared: a loop over V would add to the N iterations that
// llvmpipe allows a workgroup in all (65,535), and a second dispatch costs more than the check
// that replaces it. A head h left from an earlier batch is recognised as stale because, while
// sweeping at n, a head written by this sweep is a visited position (h > n, h < N) holding
// this id; a stale h that passed that test would be a visited position with this id, so the
// sweep would have overwritten it. The gather applies the same test (without h > n) to the
// final heads. Ids ≥ V belong to no row and are skipped.

const END: u32 = 0xffffffffu;

override N: u32; // ids
override V: u32; // rows of the table

@group(0) @binding(0) var<storage, read> idx: array<u32>;
@group(0) @binding(1) var<storage, read_write> index: array<u32>;

@compute @workgroup_size(1)
fn main() {
  for (var i = 0u; i < N; i = i + 1u) {
    let n = N - 1u - i;
    let id = idx[n];
    if (id < V) {
      let head = index[id];
      var next = END;
      if (head > n && head < N && idx[head] == id) {
        next = head;
      }
      index[V + n] = next;
      index[id] = n;
    }
  }
}

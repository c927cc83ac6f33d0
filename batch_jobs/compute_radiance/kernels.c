/* The radiance job's gridding kernels in C (issue #22), called through ctypes by native.py.
 *
 * Each kernel gives, bit for bit, what its numpy counterpart gives (gridding.py, science.py; the tests
 * compare them on planted edge values): the same IEEE operations on the same types, in the same order,
 * but in one pass over the inputs instead of one pass per numpy operation, and with no temporaries.
 * native.py builds this file with -ffp-contract=off (no fused multiply-add: numpy rounds every product)
 * and without -ffast-math; a float32 operand stays float32 wherever numpy's is (NEP 50: a Python scalar
 * takes the array's type).
 *
 * Every function returns what it needs its caller to know; none allocates, none calls back into Python.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef ptrdiff_t index_t;

/* --- numpy's pairwise summation ------------------------------------------------------------------
 * `np.add.reduce` and `np.add.reduceat` add a run of float64 terms as the first term plus numpy's
 * pairwise sum of the others (numpy/_core/src/umath/loops_utils.h.src, `pairwise_sum`): fewer than 8
 * terms one after the other from -0.0; up to 128 in 8 interleaved partial sums; more split in two
 * halves (a multiple of 8 first). TERM(i) is the i-th term, made of v[i] (a float32 value taken, or
 * +0.0 for one not taken), c[i] and `scale`. */
#define PAIRWISE_SUM(name, TERM)                                                                     \
    static double name(const float *v, const double *c, index_t n, double scale)                     \
    {                                                                                                \
        if (n < 8) {                                                                                 \
            double res = -0.0;                                                                       \
            for (index_t i = 0; i < n; i++) res += TERM(i);                                          \
            return res;                                                                              \
        }                                                                                            \
        if (n <= 128) {                                                                              \
            double r[8];                                                                             \
            index_t i;                                                                               \
            for (int k = 0; k < 8; k++) r[k] = TERM(k);                                              \
            for (i = 8; i < n - (n % 8); i += 8)                                                     \
                for (int k = 0; k < 8; k++) r[k] += TERM(i + k);                                     \
            double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));          \
            for (; i < n; i++) res += TERM(i);                                                       \
            return res;                                                                              \
        }                                                                                            \
        index_t n2 = n / 2;                                                                          \
        n2 -= n2 % 8;                                                                                \
        return name(v, c, n2, scale) + name(v + n2, c + n2, n - n2, scale);                          \
    }

/* A MODIS radiance term: the value taken, or +0.0 (gridding.where_taken). */
#define RADIANCE_TERM(i) ((void)c, (void)scale, (double)v[i])
PAIRWISE_SUM(radiance_sum, RADIANCE_TERM)

/* A MODIS insolation term: `ok * (cos(sza) * coeff)`, ok (the value taken) as 1.0 or 0.0. */
#define INSOLATION_TERM(i) ((v[i] > 0.0f ? 1.0 : 0.0) * (c[i] * scale))
PAIRWISE_SUM(insolation_sum, INSOLATION_TERM)

/* --- MISR: the 4x4 aggregation (gridding.nanmean_4x4) -------------------------------------------- */

/* np.fmax(x, +0.0): x where x > 0, else +0.0 (NaN, negatives and -0.0 alike). */
static inline float positive_part(float x) { return x > 0.0f ? x : 0.0f; }

enum { TILES_AT_ONCE = 256 };

/* One (4h, 4w) block of float32 rows `row_stride` apart (a view of some columns is read in place)
 * into out (h, w), rows `out_stride` apart: each 4x4 tile's mean of its values >= 0, NaN where none.
 * A tile line's 4 values are added left to right, then the tile's 4 lines, all in float32, then
 * divided by the count: the order of sum_4x4 and count_4x4. The lines of TILES_AT_ONCE tiles are
 * summed into a small buffer first: a loop the compiler vectorizes. */
void nanmean_4x4(const float *rad, index_t row_stride, index_t h, index_t w, float *out, index_t out_stride)
{
    float line[4][TILES_AT_ONCE];
    int32_t count[TILES_AT_ONCE];
    for (index_t i = 0; i < h; i++) {
        for (index_t j0 = 0; j0 < w; j0 += TILES_AT_ONCE) {
            index_t m = w - j0 < TILES_AT_ONCE ? w - j0 : TILES_AT_ONCE;
            for (index_t j = 0; j < m; j++) count[j] = 0;
            for (int r = 0; r < 4; r++) {
                const float *a = rad + (4 * i + r) * row_stride + 4 * j0;
                float *sum = line[r];
                for (index_t j = 0; j < m; j++) {
                    float x0 = a[4 * j], x1 = a[4 * j + 1], x2 = a[4 * j + 2], x3 = a[4 * j + 3];
                    float s = positive_part(x0) + positive_part(x1);
                    s += positive_part(x2);
                    s += positive_part(x3);
                    sum[j] = s;
                    count[j] += (x0 >= 0.0f) + (x1 >= 0.0f) + (x2 >= 0.0f) + (x3 >= 0.0f);
                }
            }
            float *o = out + i * out_stride + j0;
            for (index_t j = 0; j < m; j++) {
                float total = line[0][j] + line[1][j];
                total += line[2][j];
                total += line[3][j];
                o[j] = count[j] ? total / (float)count[j] : NAN;
            }
        }
    }
}

/* --- MISR: the geometry test (science.misr_geometry_mask) --------------------------------------- */

/* resize.resize_bilinear of one (h, w) grid to (oh, ow) at row i: skimage's taps (lo, hi, t, 1 - t per
 * output row and column), float64, a tap of weight 0 taking nothing (not even its NaN); then np.clip to
 * [low, high] (NaN stays NaN). `rows` (oh x w) is the rows pass, made once per grid. */
static void enlarge(const double *a, index_t w, index_t oh, index_t ow, const int64_t *r_lo, const int64_t *r_hi,
                    const double *r_t, const double *r_rest, const int64_t *c_lo, const int64_t *c_hi,
                    const double *c_t, const double *c_rest, double low, double high, double *rows, double *out)
{
    for (index_t i = 0; i < oh; i++) {
        const double *lo = a + r_lo[i] * w, *hi = a + r_hi[i] * w;
        for (index_t j = 0; j < w; j++)
            rows[i * w + j] = r_t[i] == 0.0 ? lo[j] : lo[j] * r_rest[i] + hi[j] * r_t[i];
    }
    for (index_t i = 0; i < oh; i++) {
        const double *row = rows + i * w;
        for (index_t k = 0; k < ow; k++) {
            double v = c_t[k] == 0.0 ? row[c_lo[k]] : row[c_lo[k]] * c_rest[k] + row[c_hi[k]] * c_t[k];
            out[i * ow + k] = v != v ? v : (v < low ? low : (v > high ? high : v));
        }
    }
}

/* The range resize_bilinear clips a grid to: its lowest and highest value that is not NaN, or none
 * (-inf, inf) when the grid has no finite value. */
static void clip_range(const double *a, index_t n, double *low, double *high)
{
    int finite = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (index_t i = 0; i < n; i++) {
        finite |= isfinite(a[i]);
        if (a[i] == a[i]) {
            lo = a[i] < lo ? a[i] : lo;
            hi = a[i] > hi ? a[i] : hi;
        }
    }
    *low = finite ? lo : -INFINITY;
    *high = finite ? hi : INFINITY;
}

/* Per block: the solar and sensor zenith grids (h, w; float64, negatives already NaN) enlarged to the
 * block's (oh, ow) pixels, and mask = sza < sza_max and vza < vza_max. `scratch` holds oh * (w + 2 ow). */
void misr_geometry(const double *sza, const double *vza, index_t nb, index_t h, index_t w, index_t oh, index_t ow,
                   const int64_t *r_lo, const int64_t *r_hi, const double *r_t, const double *r_rest,
                   const int64_t *c_lo, const int64_t *c_hi, const double *c_t, const double *c_rest,
                   double sza_max, double vza_max, double *scratch, uint8_t *mask)
{
    double *rows = scratch, *sun = scratch + oh * w, *view = sun + oh * ow;
    for (index_t b = 0; b < nb; b++) {
        const double *s = sza + b * h * w, *v = vza + b * h * w;
        double low, high;
        clip_range(s, h * w, &low, &high);
        enlarge(s, w, oh, ow, r_lo, r_hi, r_t, r_rest, c_lo, c_hi, c_t, c_rest, low, high, rows, sun);
        clip_range(v, h * w, &low, &high);
        enlarge(v, w, oh, ow, r_lo, r_hi, r_t, r_rest, c_lo, c_hi, c_t, c_rest, low, high, rows, view);
        uint8_t *m = mask + b * oh * ow;
        for (index_t p = 0; p < oh * ow; p++) m[p] = (sun[p] < sza_max) & (view[p] < vza_max);
    }
}

/* --- MISR: cells and bands (science.misr_cells, science.misr_band) ------------------------------- */

/* gridding._floor_bins for one value: floor(x n) - e0 n in float32 (exact for a grid's edges). */
static inline float floor_bin(float x, float n, float e0_n) { return floorf(x * n) - e0_n; }

/* The pixels of a geometry mask that are taken and inside the grid, with their flat cells (the MISR
 * rule: histogram bins of -lat and lon on edges e0 + k/n), as runs in pixel order: (first pixel, pixels,
 * cell) for pixels side by side in one cell (a block line crosses a few cells: runs of tens of pixels).
 * Returns the number of runs written; -1 when a value falls on or past a last edge (then the caller
 * applies the rule's last-edge test, science._histogram_bin, which this kernel does not repeat); -2
 * when more than `capacity` runs would be needed. */
index_t misr_cells(const uint8_t *mask, const float *lat, const float *lon, index_t npix,
                   float lat_n, float lat_e0_n, float nlat, float lon_n, float lon_e0_n, float nlon,
                   int64_t *runs, index_t capacity)
{
    index_t k = 0;
    for (index_t p = 0; p < npix; p++) {
        if (!mask[p]) continue;
        float row = floor_bin(-lat[p], lat_n, lat_e0_n);
        float col = floor_bin(lon[p], lon_n, lon_e0_n);
        if (row >= nlat || col >= nlon) return -1;
        if (!(row >= 0.0f && row < nlat && col >= 0.0f && col < nlon)) continue;
        float cell_f = row * nlon;
        cell_f += col;
        int64_t cell = (int64_t)cell_f, *last = runs + 3 * (k - 1);
        if (k && last[0] + last[1] == p && last[2] == cell) {
            last[1]++;
            continue;
        }
        if (k == capacity) return -2;
        runs[3 * k] = p;
        runs[3 * k + 1] = 1;
        runs[3 * k + 2] = cell;
        k++;
    }
    return k;
}

/* One band over the runs of misr_cells: per cell, the count of values in (0, rad_max) and the float64
 * sum of those values (+0.0 for the others), each cell's terms added in pixel order to sums[cell]
 * (which the caller zeroes: np.bincount's order). A run is read in order and summed in a register. */
void misr_band(const float *rad, const int64_t *runs, index_t nruns, float rad_max, double *sums, int64_t *counts)
{
    for (index_t r = 0; r < nruns; r++) {
        const float *v = rad + runs[3 * r];
        index_t pixels = runs[3 * r + 1];
        int64_t cell = runs[3 * r + 2], count = 0;
        double sum = sums[cell];
        for (index_t k = 0; k < pixels; k++) {
            int ok = (v[k] > 0.0f) & (v[k] < rad_max);
            sum += ok ? (double)v[k] : 0.0;
            count += ok;
        }
        sums[cell] = sum;
        counts[cell] += count;
    }
}

/* --- MODIS (science.modis_granule) ---------------------------------------------------------------- */

enum { MODIS_TAKEN, MODIS_MINUS_90, MODIS_LOW_CELL, MODIS_HIGH_CELL, MODIS_STATS };

/* The first pass over a granule's pixels: the angle tests (science._modis_taken), then the index rule
 * for an integer power-of-two n (gridding.modis_ceres_index_pow2). cell_of[p] is the pixel's flat cell,
 * or -1 when it is not taken. stats: pixels taken and inside the grid, pixels at latitude -90 (not
 * fill) among those the angles take, the lowest and highest cell taken. No branch on a pixel (a loop
 * the compiler vectorizes): a coordinate not inside is replaced by 0 before it becomes an integer. */
void modis_take(const float *lat, const float *lon, const float *sza, const float *vza, index_t npix,
                float sza_max, float vza_max, float fill_max, int32_t n, int32_t num_lons, int32_t *cell_of,
                int64_t *stats)
{
    const float fn = (float)n, lon_max = (float)(180.0 + 1.0 / (double)n);
    int32_t minus_90 = 0, taken = 0;
    for (index_t p = 0; p < npix; p++) {
        float s = sza[p], v = vza[p], y = lat[p], x = lon[p];
        int32_t angles = (s >= 0.0f) & (s <= sza_max) & (v >= 0.0f) & (v < vza_max);
        int32_t inside = angles & (fabsf(y) < 90.0f) & (x > -180.0f) & (x < lon_max);
        minus_90 += angles & (y == -90.0f) & (x > fill_max);
        float ys = inside ? y : 0.0f, xs = inside ? x : 0.0f;
        int32_t row = 90 * n - (int32_t)(ys * fn) - (ys >= 0.0f);
        int32_t col = (int32_t)(xs * fn) + 180 * n - (xs < 0.0f);
        col = col == 360 * n ? 0 : col;
        int32_t cell = row * num_lons + col;
        cell_of[p] = inside ? cell : -1;
        taken += inside;
    }
    uint32_t lowest = UINT32_MAX, above_highest = 0;  /* as unsigned, -1 is above every cell, -1 + 1 below */
    for (index_t p = 0; p < npix; p++) {
        uint32_t cell = (uint32_t)cell_of[p], above = cell + 1u;
        lowest = cell < lowest ? cell : lowest;
        above_highest = above > above_highest ? above : above_highest;
    }
    int64_t low = lowest, high = (int64_t)above_highest - 1;
    int64_t out[MODIS_STATS] = {taken, minus_90, low, high};
    for (int i = 0; i < MODIS_STATS; i++) stats[i] = out[i];
}

/* The second pass: the pixels taken in cell order (pixel order within a cell: a stable counting sort
 * of cell_of over cells low .. low + span - 1), each channel's value (science.modis_refill_saturation,
 * then taken when 0 < value <= ceiling, else +0.0) and the pixel's cosine put in that order. The pixels
 * are `cols` to a swath line. Scratch: `ends` (span items), `runs` (3 x cols). Writes `values` (channels x
 * taken), `cosines` (taken), the distinct cells to `unique` and where each one's pixels end to `cell_end`;
 * returns the number of distinct cells, or -1 (and nothing meaningful) when a pixel's solar zenith is not a
 * hundredth of a degree in `table_degrees`: only those have their cosine in `table_cos`
 * (gridding.cos_degrees computes the others). */
index_t modis_sort(const int32_t *cell_of, index_t npix, index_t cols, int64_t low, index_t span, int64_t *ends,
                   const float *bands, index_t nch, const float *sza, const float *table_degrees,
                   const double *table_cos, const float *ceiling, float *values, double *cosines, index_t taken,
                   int64_t *runs, int64_t *unique, int64_t *cell_end)
{
    for (index_t c = 0; c < span; c++) ends[c] = 0;
    for (index_t p = 0; p < npix; p++)
        if (cell_of[p] >= 0) ends[cell_of[p] - low]++;
    index_t ncells = 0, position = 0;
    for (index_t c = 0; c < span; c++) {  /* each cell's count becomes where it starts */
        index_t pixels = ends[c];
        if (pixels) unique[ncells++] = low + c;
        ends[c] = position;
        position += pixels;
    }
    /* Line by line: first the runs of pixels side by side in one cell (a line crosses a few cells), each
     * given its places (its cell's next; a cell's start becomes its end) and its cosines; then each
     * channel's values run by run, read and written in order (a loop the compiler vectorizes). */
    int64_t *run_pixel = runs, *run_at = runs + cols, *run_length = runs + 2 * cols;
    for (index_t line = 0; line < npix; line += cols) {
        index_t end = line + cols < npix ? line + cols : npix, nruns = 0;
        for (index_t p = line; p < end;) {
            int32_t cell = cell_of[p];
            if (cell < 0) {
                p++;
                continue;
            }
            index_t q = p + 1;
            while (q < end && cell_of[q] == cell) q++;
            index_t at = ends[cell - low];
            ends[cell - low] += q - p;
            for (index_t k = 0; k < q - p; k++) {
                float zenith = sza[p + k];
                int32_t centi = (int32_t)rintf(zenith * 100.0f);  /* zenith in 0..89 here */
                if (table_degrees[centi] != zenith) return -1;
                cosines[at + k] = table_cos[centi];
            }
            run_pixel[nruns] = p;
            run_at[nruns] = at;
            run_length[nruns++] = q - p;
            p = q;
        }
        for (index_t ch = 0; ch < nch; ch++) {
            /* Channels after the first refill -992 where the first is > 0; NaN equals no value. */
            const float top = ceiling[ch], saturated = ch > 0 ? -992.0f : NAN;
            for (index_t r = 0; r < nruns; r++) {
                const float *restrict in = bands + ch * npix + run_pixel[r], *restrict first = bands + run_pixel[r];
                float *restrict out = values + ch * taken + run_at[r];
                for (index_t k = 0; k < run_length[r]; k++) {
                    float v = in[k];
                    v = (v == saturated) & (first[k] > 0.0f) ? top : v;
                    out[k] = (v > 0.0f) & (v <= top) ? v : 0.0f;
                }
            }
        }
    }
    for (index_t k = 0; k < ncells; k++) cell_end[k] = ends[unique[k] - low];
    return ncells;
}

/* The third: per distinct cell and channel of modis_sort's output, the count of values taken, the
 * radiance sum and the insolation sum (coeff per channel), each sum as np.add.reduceat adds it, into
 * (channels, ncells) arrays. */
void modis_sums(const float *values, const double *cosines, index_t taken, index_t nch, const int64_t *cell_end,
                index_t ncells, const double *coeff, int64_t *counts, double *rad, double *sol)
{
    index_t start = 0;
    for (index_t k = 0; k < ncells; k++) {
        index_t end = cell_end[k], m = end - start;
        const double *c = cosines + start;
        for (index_t ch = 0; ch < nch; ch++) {
            const float *v = values + ch * taken + start;
            int64_t count = 0;
            for (index_t i = 0; i < m; i++) count += v[i] > 0.0f;
            double scale = coeff[ch];
            counts[ch * ncells + k] = count;
            rad[ch * ncells + k] = RADIANCE_TERM(0) + radiance_sum(v + 1, c + 1, m - 1, scale);
            sol[ch * ncells + k] = INSOLATION_TERM(0) + insolation_sum(v + 1, c + 1, m - 1, scale);
        }
        start = end;
    }
}

//! `refract-sdk-macro`: the `#[automation]` attribute of `refract-sdk`.
//!
//! Use it as `#[refract_sdk::automation]`; the expansion names `::refract_sdk`, so this crate
//! is useless on its own. It depends on nothing of Refract's.

#![warn(missing_docs)]

use proc_macro::TokenStream;
use quote::quote;
use syn::{FnArg, ItemFn, ReturnType, parse_macro_input};

/// Marks the automation's handler and exports it as the component's `run`.
///
/// See `refract_sdk::automation` for the documentation.
#[proc_macro_attribute]
pub fn automation(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            proc_macro2::TokenStream::from(attr)
                .into_iter()
                .next()
                .map_or_else(proc_macro2::Span::call_site, |t| t.span()),
            "#[automation] takes no arguments",
        )
        .to_compile_error()
        .into();
    }
    let handler = parse_macro_input!(item as ItemFn);
    if let Err(e) = check(&handler) {
        return e.to_compile_error().into();
    }
    let name = &handler.sig.ident;
    quote! {
        #handler

        // The export glue: a unit type implementing the world's `Guest` trait (named so it
        // cannot clash with the author's items) and wit-bindgen's `export!`, which defines the
        // component's `run` export. `export!` expands to `#[unsafe(export_name)]` functions
        // and `unsafe` blocks, hence the narrow `allow`.
        #[allow(unsafe_code)]
        const _: () = {
            struct __RefractAutomation;

            impl ::refract_sdk::__private::Guest for __RefractAutomation {
                fn run(
                    invocation: ::refract_sdk::__private::RawInvocation,
                ) -> ::core::result::Result<
                    ::refract_sdk::__private::RawOutput,
                    ::refract_sdk::__private::RawError,
                > {
                    ::refract_sdk::__private::run(invocation, #name)
                }
            }

            ::refract_sdk::__private::__export_automation!(
                __RefractAutomation with_types_in ::refract_sdk::__bindings
            );
        };
    }
    .into()
}

/// The handler must be a plain, non-generic function of one argument returning a value.
fn check(f: &ItemFn) -> syn::Result<()> {
    let sig = &f.sig;
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new_spanned(
            a,
            "#[automation] handlers are plain functions, not `async`",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "#[automation] handlers cannot be generic",
        ));
    }
    if sig.inputs.len() != 1 || matches!(sig.inputs.first(), Some(FnArg::Receiver(_))) {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            "#[automation] handlers take exactly one argument: `inv: refract_sdk::Invocation`",
        ));
    }
    if matches!(sig.output, ReturnType::Default) {
        return Err(syn::Error::new_spanned(
            sig,
            "#[automation] handlers return `Result<impl Into<refract_sdk::Output>, impl Into<refract_sdk::Error>>`",
        ));
    }
    Ok(())
}
